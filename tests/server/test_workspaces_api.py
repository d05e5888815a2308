"""Workspaces, members and roles through the REST API, as the sidebar and the client use it."""

import pytest

from pai_lab.server import ROUTERS


async def test_default_workspace_exists_with_owner(api):
    status, me = await api("GET", "/me")
    assert status == 200 and me["username"] == "owner" and me["server_owner"] is True
    status, spaces = await api("GET", "/workspaces")
    assert status == 200
    assert [w["name"] for w in spaces] == ["default"]
    assert spaces[0]["my_roles"] == ["Owner"]
    status, members = await api("GET", "/workspaces/default/members")
    assert [(m["username"], m["roles"]) for m in members] == [("owner", ["Owner"])]


async def test_create_workspace_makes_creator_owner(api, members):
    await members("default")
    status, ws = await api("POST", "/workspaces", {"name": "vision_team", "description": "CV"}, user="dev")
    assert status == 201, ws
    assert ws["name"] == "vision_team" and ws["created_by"] == "dev" and ws["my_roles"] == ["Owner"]
    status, listed = await api("GET", "/workspaces", user="dev")
    assert "vision_team" in [w["name"] for w in listed]
    # the server owner is not a member of someone else's workspace
    status, body = await api("GET", "/workspaces/vision_team")
    assert status == 403 and "not a member" in body["error"]["message"]
    status, got = await api("GET", f"/workspaces/{ws['id']}", user="dev")  # by id too
    assert status == 200 and got["name"] == "vision_team"


async def test_duplicate_name_is_409_case_insensitively(api):
    assert (await api("POST", "/workspaces", {"name": "team_a"}))[0] == 201
    status, body = await api("POST", "/workspaces", {"name": "Team_A"})
    assert status == 409
    assert body["error"]["field"] == "name" and "already exists" in body["error"]["message"]


@pytest.mark.parametrize("name", ["ab", "1abc", "a-b-c", "x" * 24, "", "_abc", "has space"])
async def test_names_that_break_the_rule_are_refused(api, name):
    status, body = await api("POST", "/workspaces", {"name": name})
    assert status == 400
    assert body["error"]["field"] == "name"
    assert "3 to 23 characters" in body["error"]["message"]
    status, spaces = await api("GET", "/workspaces")
    assert [w["name"] for w in spaces] == ["default"]


@pytest.mark.parametrize("name", ["abc", "a" * 23, "Team_01"])
async def test_names_at_the_edges_of_the_rule_are_accepted(api, name):
    status, body = await api("POST", "/workspaces", {"name": name})
    assert status == 201, body


async def test_malformed_and_unknown_fields(api):
    status, body = await api("POST", "/workspaces", raw_body=b"{not json")
    assert status == 400 and body["error"]["field"] == "body" and "malformed JSON" in body["error"]["message"]
    status, body = await api("POST", "/workspaces", {"name": "okname", "colour": "red"})
    assert status == 400 and body["error"]["field"] == "colour"
    status, body = await api("POST", "/workspaces", {"description": "no name"})
    assert status == 400 and body["error"]["field"] == "name"


async def test_member_rules(api):
    ws = "/workspaces/default/members"
    status, m = await api("POST", ws, {"username": "alice", "roles": ["AlgorithmDeveloper", "Guest"]})
    assert status == 201 and m["roles"] == ["AlgorithmDeveloper", "Guest"] and m["added_by"] == "owner"

    status, body = await api("POST", ws, {"username": "bob", "roles": ["Developer"]})
    assert status == 400 and body["error"]["field"] == "roles"
    assert "unknown role 'Developer'" in body["error"]["message"]
    status, body = await api("POST", ws, {"username": "bob", "roles": []})
    assert status == 400 and body["error"]["field"] == "roles"
    status, body = await api("POST", ws, {"username": "bob", "roles": ["Owner"]})
    assert status == 400 and "one Owner" in body["error"]["message"]
    status, body = await api("POST", ws, {"username": "alice", "roles": ["Guest"]})
    assert status == 409

    status, body = await api("PATCH", f"{ws}/owner", {"roles": ["Administrator"]})
    assert status == 403 and "Owner role cannot be removed" in body["error"]["message"]
    status, body = await api("DELETE", f"{ws}/owner")
    assert status == 403 and "cannot be removed" in body["error"]["message"]
    status, body = await api("PATCH", f"{ws}/alice", {"roles": []})
    assert status == 400  # a member keeps at least one role

    status, m = await api("PATCH", f"{ws}/alice", {"roles": ["AlgorithmOps"]})
    assert status == 200 and m["roles"] == ["AlgorithmOps"]
    status, _ = await api("DELETE", f"{ws}/alice")
    assert status == 204
    status, body = await api("DELETE", f"{ws}/alice")
    assert status == 404
    status, listed = await api("GET", ws)
    assert [x["username"] for x in listed] == ["owner"]


async def test_only_owner_and_admin_manage_members(api, members):
    await members("default")
    for user in ("dev", "ops", "labeladmin", "guest"):
        status, body = await api(
            "POST", "/workspaces/default/members", {"username": "x1", "roles": ["Guest"]}, user=user
        )
        assert status == 403, user
        assert "member.manage" in body["error"]["message"] and "Administrator" in body["error"]["message"]
    status, _ = await api("POST", "/workspaces/default/members", {"username": "x1", "roles": ["Guest"]}, user="admin")
    assert status == 201
    status, body = await api("DELETE", "/workspaces/default/members/owner", user="admin")
    assert status == 403  # not even an Administrator removes the Owner
    status, body = await api("GET", "/workspaces/default/members", user="stranger")
    assert status == 403 and "not a member" in body["error"]["message"]


async def test_update_and_delete_workspace(api, members):
    assert (await api("POST", "/workspaces", {"name": "scratch"}))[0] == 201
    await members("scratch")
    status, body = await api("PATCH", "/workspaces/scratch", {"description": "new"}, user="guest")
    assert status == 403
    status, ws = await api("PATCH", "/workspaces/scratch", {"name": "scratch2", "description": "new"}, user="admin")
    assert status == 200 and ws["name"] == "scratch2" and ws["description"] == "new"
    status, body = await api("DELETE", "/workspaces/scratch2", user="admin")
    assert status == 403 and "workspace.delete" in body["error"]["message"]
    status, _ = await api("DELETE", "/workspaces/scratch2")
    assert status == 204
    assert (await api("GET", "/workspaces/scratch2"))[0] == 404
    status, body = await api("DELETE", "/workspaces/default")
    assert status == 400 and "cannot be deleted" in body["error"]["message"]
    status, body = await api("PATCH", "/workspaces/default", {"name": "other"})
    assert status == 400


async def test_operation_log_records_who_what_and_result(api, members):
    await members("default")
    await api("POST", "/workspaces/default/members", {"username": "zed", "roles": ["Guest"]}, user="admin")
    await api("POST", "/workspaces/default/members", {"username": "zed2", "roles": ["Guest"]}, user="guest")
    status, ops = await api("GET", "/workspaces/default/oplog")
    assert status == 200
    latest = ops[0]
    assert (latest["actor"], latest["action"], latest["result"]) == ("guest", "member.add", "error:403")
    added = [o for o in ops if o["actor"] == "admin" and o["action"] == "member.add"]
    assert [(o["result"], o["target"]) for o in added] == [("ok", "/workspaces/default/members")]
    status, _body = await api("GET", "/workspaces/default/oplog", user="guest")
    assert status == 403


async def test_roles_matrix_is_served(api):
    status, doc = await api("GET", "/roles")
    assert status == 200
    assert [r["name"] for r in doc["roles"]] == [
        "Owner",
        "Administrator",
        "AlgorithmDeveloper",
        "AlgorithmOps",
        "LabelingAdmin",
        "LabelingTeamLead",
        "Guest",
    ]
    assert set(doc["areas"]) >= {"workspace", "datasets", "labeling", "training", "serving"}
    assert doc["matrix"]["member.manage"] == {"Owner": "all", "Administrator": "all"}
    assert "Guest" not in doc["matrix"]["dataset.create"]


async def test_every_route_refuses_anonymous_calls(api):
    walked = 0
    for router in ROUTERS:
        for op in router.operations:
            path = op.path
            for param in op.params:
                path = path.replace("{" + param + "}", "default" if param == "workspace" else "x")
            status, _body = await api(op.method, path, {} if op.method in ("POST", "PUT", "PATCH") else None, user=None)
            assert status in (401, 403), (op.method, path, status)
            walked += 1
    assert walked >= 12


async def test_query_parameters_are_validated_but_cache_busters_ignored(api):
    status, _ops = await api("GET", "/workspaces/default/oplog", params={"limit": "5", "1764000000000": ""})
    assert status == 200
    status, body = await api("GET", "/workspaces/default/oplog", params={"limit": "many"})
    assert status == 400 and body["error"]["field"] == "limit"
    status, body = await api("GET", "/workspaces/default/oplog", params={"limt": "5"})
    assert status == 400 and body["error"]["field"] == "limt"


async def test_batch_member_delete_removes_all_or_none_and_never_the_owner(api, members):
    assert (await api("POST", "/workspaces", {"name": "batch_team"}))[0] == 201
    await members("batch_team")
    path = "/workspaces/batch_team/member-removals"
    # a Guest may not remove anyone
    status, body = await api("POST", path, {"usernames": ["dev", "ops"]}, user="guest")
    assert status == 403 and body["error"]["field"] == "role" and "member.manage" in body["error"]["message"]
    # the Owner in the batch: refused, and nobody else goes either
    status, body = await api("POST", path, {"usernames": ["dev", "owner"]}, user="admin")
    assert status == 403 and body["error"]["field"] == "usernames" and "Owner" in body["error"]["message"]
    # an unknown name: 404 naming it, nobody removed
    status, body = await api("POST", path, {"usernames": ["dev", "nobody_here"]})
    assert status == 404 and "nobody_here" in body["error"]["message"]
    status, body = await api("POST", path, {"usernames": []})
    assert status in (400, 422) and body["error"]["field"] == "usernames"
    _, listed = await api("GET", "/workspaces/batch_team/members")
    assert {"dev", "ops", "labeladmin", "guest"} <= {m["username"] for m in listed}
    # an Administrator removes three at once
    status, body = await api("POST", path, {"usernames": ["dev", "ops", "labeladmin"]}, user="admin")
    assert status == 200 and body["removed"] == ["dev", "ops", "labeladmin"]
    _, listed = await api("GET", "/workspaces/batch_team/members")
    assert sorted(m["username"] for m in listed) == ["admin", "guest", "owner"]
    _, log = await api("GET", "/workspaces/batch_team/oplog")
    assert any(o["action"] == "member.remove_many" and o["actor"] == "admin" for o in log)
