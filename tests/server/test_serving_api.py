"""Services through the REST API, as the sidebar and the client use it: roles, validation, the
eascmd lifecycle. Services here run no instance (metadata.instance 0) unless a test needs one."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.tf


def spec(name: str, model: str, **meta) -> dict:
    return {"name": name, "model_path": model, "processor": "tensorflow_cpu_2.7", "metadata": {"instance": 0, **meta}}


async def test_roles_decide_who_deploys_and_test_services_are_open_to_developers(api, members, saved_model):
    await members("default")
    status, body = await api("POST", "/workspaces/default/services", spec("prod_model", str(saved_model)), user="dev")
    assert status == 403 and "test services" in body["error"]["message"]
    status, created = await api(
        "POST", "/workspaces/default/services", spec("test_model", str(saved_model)), user="dev"
    )
    assert status == 201, created
    assert created["test"] is True and created["created_by"] == "dev"
    status, body = await api("POST", "/workspaces/default/services", spec("ops_model", str(saved_model)), user="ops")
    assert status == 201, body
    status, body = await api(
        "POST", "/workspaces/default/services", spec("guest_model", str(saved_model)), user="guest"
    )
    assert status == 403
    # a developer manages test services only; a guest reads
    status, _ = await api("PATCH", "/workspaces/default/services/test_model", {"metadata": {"instance": 0}}, user="dev")
    assert status == 200
    status, _ = await api("POST", "/workspaces/default/services/ops_model/stop", user="dev")
    assert status == 403
    status, listed = await api("GET", "/workspaces/default/services", user="guest")
    assert status == 200 and {s["name"] for s in listed} == {"test_model", "ops_model"}
    status, _ = await api("DELETE", "/workspaces/default/services/ops_model", user="guest")
    assert status == 403
    status, _ = await api("GET", "/workspaces/default/services", user="stranger")
    assert status == 403


async def test_bad_service_json_is_refused_with_the_key_and_nothing_is_stored(api, saved_model, tmp_path):
    cases = [
        ({**spec("svc_a", str(saved_model)), "replicas": 2}, "replicas", "unknown key"),
        ({"name": "svc_a", "model_path": str(saved_model), "processor": "tensorflow_cpu"}, "metadata", "required"),
        (spec("svc_a", str(tmp_path / "nowhere")), "model_path", "neither a path nor a model"),
        (spec("svc_a", str(tmp_path)), "model_path", "no SavedModel"),
        ({**spec("svc_a", str(saved_model)), "processor": "caffe"}, "processor", "not available"),
        ({**spec("svc_a", str(saved_model)), "processor_type": "java"}, "processor_type", "cannot run here"),
        (
            {"name": "svc_a", "processor_type": "python", "processor_path": str(tmp_path), "metadata": {"instance": 0}},
            "processor_entry",
            "required",
        ),
    ]
    for body, field, words in cases:
        status, answer = await api("POST", "/workspaces/default/services", body)
        assert status == 400, (body, answer)
        assert answer["error"]["field"] == field and words in answer["error"]["message"], answer
    status, listed = await api("GET", "/workspaces/default/services")
    assert listed == []


async def test_names_are_unique_and_blue_green_needs_an_existing_service(api, saved_model):
    assert (await api("POST", "/workspaces/default/services", spec("svc_b", str(saved_model))))[0] == 201
    status, body = await api("POST", "/workspaces/default/services", spec("svc_b", str(saved_model)))
    assert status == 409 and body["error"]["field"] == "name"
    status, body = await api(
        "POST", "/workspaces/default/services", spec("svc_c", str(saved_model)), params={"relate": "true"}
    )
    assert status == 400 and "create it without -r" in body["error"]["message"]
    status, child = await api(
        "POST", "/workspaces/default/services", spec("svc_b", str(saved_model)), params={"relate": "true"}
    )
    assert status == 201 and child["name"].startswith("svc_b_") and len(child["name"]) == len("svc_b_") + 8
    assert child["parent"] == "svc_b" and child["endpoint"].endswith("/api/predict/" + child["name"])
    # release takes the new service, not the original
    status, body = await api("POST", "/workspaces/default/services/svc_b/release", {"weight": 20})
    assert status == 400 and "create -r" in body["error"]["message"]
    status, released = await api("POST", f"/workspaces/default/services/{child['name']}/release", {"weight": 20})
    assert status == 200 and released["endpoint"] is None and released["weight"] == 20
    status, listed = await api("GET", "/workspaces/default/services")
    entry = next(s for s in listed if s["name"] == "svc_b")
    assert entry["traffic"] == {"svc_b": 80, child["name"]: 20}
    # deleting the original sends all of its endpoint's traffic to the survivor
    assert (await api("DELETE", "/workspaces/default/services/svc_b"))[0] == 204
    status, listed = await api("GET", "/workspaces/default/services")
    assert [(s["name"], s["traffic"], s["service_path"]) for s in listed] == [
        (child["name"], {child["name"]: 100}, "/api/predict/svc_b")
    ]
    status, body = await api("POST", "/workspaces/default/services", spec("svc_b", str(saved_model)))
    assert status == 409  # the entry endpoint lives on


async def test_modify_versions_and_switching_back(api, saved_model, saved_model_v2):
    assert (await api("POST", "/workspaces/default/services", spec("svc_v", str(saved_model))))[0] == 201
    status, body = await api("PATCH", "/workspaces/default/services/svc_v", {"metadata": {"instance": 0, "cpu": 1}})
    assert status == 200 and body["latest_version"] == 1 and body["config"]["metadata"]["cpu"] == 1
    status, body = await api(
        "PATCH",
        "/workspaces/default/services/svc_v",
        {"model_path": str(saved_model_v2), "processor": "tensorflow_cpu_2.7"},
    )
    assert status == 200 and (body["current_version"], body["latest_version"]) == (2, 2)
    status, body = await api("POST", "/workspaces/default/services/svc_v/version", {"version": 1})
    assert status == 200 and body["current_version"] == 1 and body["config"]["model_path"] == str(saved_model)
    status, body = await api("POST", "/workspaces/default/services/svc_v/version", {"version": 5})
    assert status == 404 and body["error"]["field"] == "version"
    status, versions = await api("GET", "/workspaces/default/services/svc_v/versions")
    assert [(v["version"], v["current"]) for v in versions] == [(1, True), (2, False)]
    status, body = await api("PATCH", "/workspaces/default/services/svc_v", {"metadata": {"bogus": 1}})
    assert status == 400 and body["error"]["field"] == "metadata.bogus"
    status, body = await api("GET", "/workspaces/default/services/svc_v")
    assert body["current_version"] == 1 and "bogus" not in body["config"]["metadata"]


@pytest.fixture
def jp_server_config(jp_server_config):
    # the operator lets the server read s3:// objects with its own AWS_* credentials (the oss_endpoint test);
    # without it such a model_path is a 400 (tests/security/test_object_credentials.py)
    jp_server_config["PaiLabApp"]["allowed_object_prefixes"] = ["s3://"]
    return jp_server_config


@pytest.mark.s3
async def test_model_path_on_s3_is_fetched_through_oss_endpoint(api, saved_model, s3_server, s3_bucket, monkeypatch):
    import fsspec

    from tests.fixtures.s3 import S3_CREDENTIALS

    bucket, options = s3_bucket
    fs = fsspec.filesystem("s3", **options)
    fs.put(str(saved_model), f"{bucket}/models/mnist", recursive=True)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", S3_CREDENTIALS["key"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", S3_CREDENTIALS["secret"])
    body = {**spec("svc_s3", f"s3://{bucket}/models/mnist"), "oss_endpoint": s3_server}
    status, created = await api("POST", "/workspaces/default/services", body)
    assert status == 201, created
    status, answer = await api(
        "POST",
        "/workspaces/default/services",
        {**spec("svc_s3b", f"s3://{bucket}/models/missing"), "oss_endpoint": s3_server},
    )
    assert status == 400 and answer["error"]["field"] == "model_path" and "does not exist" in answer["error"]["message"]


async def test_a_registered_model_is_deployed_by_reference(api, saved_model, saved_model_v2):
    for path in (saved_model, saved_model_v2):
        status, body = await api("POST", "/workspaces/default/models", {"name": "mnist", "path": str(path)})
        assert status == 201, body
    status, latest = await api("POST", "/workspaces/default/services", spec("svc_latest", "mnist"))
    assert status == 201 and latest["model_dir"] == str(saved_model_v2)
    status, first = await api("POST", "/workspaces/default/services", spec("svc_first", "mnist:1"))
    assert status == 201 and first["model_dir"] == str(saved_model)
    status, body = await api("POST", "/workspaces/default/services", spec("svc_none", "mnist:9"))
    assert status == 400 and body["error"]["field"] == "model_path"


async def test_a_workspace_with_services_is_not_deleted(api, saved_model):
    assert (await api("POST", "/workspaces", {"name": "serving_team"}))[0] == 201
    assert (await api("POST", "/workspaces/serving_team/services", spec("team_svc", str(saved_model))))[0] == 201
    status, body = await api("DELETE", "/workspaces/serving_team")
    assert status == 409 and "team_svc" in body["error"]["message"]
    assert (await api("DELETE", "/workspaces/serving_team/services/team_svc"))[0] == 204
    assert (await api("DELETE", "/workspaces/serving_team"))[0] == 204
