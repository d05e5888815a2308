"""Workspaces, members and roles through the REST API, as the sidebar and the client use it."""

import pytest


async def test_default_workspace_exists_with_owner(api):
    status, me = await api("GET", "/me")
    assert status == 200 and me["username"] == "owner" and me["server_owner"] is True
    status, spaces = await api("GET", "/workspaces")
    assert status == 200
    assert [w["name"] for w in spaces] == ["default"]
    assert spaces[0]["my_roles"] == ["Owner"]
    status, members = await api("GET", "/workspaces/default/members")
    assert [(m["username"], m["roles"]) for m in members] == [("owner", ["Owner"])]
