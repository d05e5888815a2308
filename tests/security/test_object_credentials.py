"""s3:// and oss:// objects are read (and written) with the credentials a member or workspace declares, never
with the server's own: here the server's environment holds working AWS credentials and endpoint for the moto
S3 server, so every read that fell back to them would succeed; each one is a 400 naming the field and the
fix, except under the prefix the operator allows (``allowed_object_prefixes``)."""

from __future__ import annotations

import pytest

from tests.fixtures.s3 import S3_CREDENTIALS

pytestmark = pytest.mark.s3
W = "/workspaces/default"


@pytest.fixture
def jp_server_config(jp_server_config, s3_bucket):
    bucket, _options = s3_bucket
    jp_server_config["PaiLabApp"]["allowed_object_prefixes"] = [f"s3://{bucket}/public/"]
    return jp_server_config


@pytest.fixture
def bucket(s3_server, s3_bucket, monkeypatch):
    """The bucket, with one object under private/ and one under public/, and the server's own environment
    holding credentials that reach it (what the server falls back to when a read carries none)."""
    import fsspec

    name, options = s3_bucket
    fs = fsspec.filesystem("s3", **options)
    for prefix in ("private", "public"):
        fs.pipe(f"{name}/{prefix}/a.txt", b"the bucket's data")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", S3_CREDENTIALS["key"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", S3_CREDENTIALS["secret"])
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_server)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    return name


def _refused(status: int, body, field: str) -> None:
    assert status == 400, body
    error = body["error"]
    assert error["field"] == field, error
    assert "allowed_object_prefixes" in error["message"] and "storage_options" in error["message"], error


async def test_a_dataset_in_a_bucket_is_read_with_its_own_credentials_only(api, members, bucket, s3_server):
    await members()
    private = f"s3://{bucket}/private/"
    for options in ({}, {"endpoint_url": s3_server}, {"endpoint_url": s3_server, "profile": "default"}):
        status, body = await api(
            "POST",
            f"{W}/datasets",
            {"name": "theirs", "source": private, "scan": True, "storage_options": options},
            user="dev",
        )
        _refused(status, body, "source")
    own = {"endpoint_url": s3_server, "key": S3_CREDENTIALS["key"], "secret": S3_CREDENTIALS["secret"]}
    status, body = await api(
        "POST", f"{W}/datasets", {"name": "mine", "source": private, "scan": True, "storage_options": own}, user="dev"
    )
    assert status == 201, body
    # under the prefix the operator allows, the server's own credentials may answer
    status, body = await api(
        "POST", f"{W}/datasets", {"name": "open", "source": f"s3://{bucket}/public/", "scan": True}, user="dev"
    )
    assert status == 201, body
    status, items = await api("GET", f"{W}/datasets/open/items", user="dev")
    assert status == 200 and [i["source"] for i in items["items"]] == [f"s3://{bucket}/public/a.txt"], items


async def test_an_item_in_a_bucket_is_not_read_with_the_servers_credentials(api, members, bucket):
    await members()
    lines = [{"data": {"source": f"s3://{bucket}/{prefix}/a.txt"}} for prefix in ("private", "public")]
    status, body = await api("POST", f"{W}/datasets", {"name": "listed", "items": lines}, user="dev")
    assert status == 201, body
    status, body = await api("GET", f"{W}/datasets/listed/content", params={"index": "0"}, user="dev")
    _refused(status, body, "key")
    status, body = await api("GET", f"{W}/datasets/listed/content", params={"index": "1"}, user="dev")
    assert status == 200 and body == "the bucket's data", body


async def test_a_model_in_a_bucket_is_read_with_the_workspaces_store_only(api, members, bucket, s3_server, saved_model):
    import fsspec

    await members()
    fs = fsspec.filesystem("s3", key=S3_CREDENTIALS["key"], secret=S3_CREDENTIALS["secret"])
    fs.put(str(saved_model), f"{bucket}/private/models/mnist", recursive=True)
    model = f"s3://{bucket}/private/models/mnist"
    service = {"name": "from_bucket", "model_path": model, "processor": "tensorflow_cpu", "metadata": {"instance": 1}}
    status, body = await api("POST", f"{W}/services", {**service, "oss_endpoint": s3_server}, user="ops")
    _refused(status, body, "model_path")
    status, body = await api("POST", f"{W}/services", service, user="ops")
    _refused(status, body, "model_path")
    # the workspace's model store: its options must carry credentials too
    store = {"model_store": f"s3://{bucket}/private/models"}
    status, body = await api("PUT", f"{W}/storage", {**store, "storage_options": {"endpoint_url": s3_server}})
    _refused(status, body, "storage_options")
    own = {"endpoint_url": s3_server, "key": S3_CREDENTIALS["key"], "secret": S3_CREDENTIALS["secret"]}
    status, body = await api("PUT", f"{W}/storage", {**store, "storage_options": own})
    assert status == 200, body
    status, body = await api("POST", f"{W}/services", service, user="ops")
    assert status == 201, body
    assert (await api("DELETE", f"{W}/services/from_bucket", user="ops"))[0] == 204


async def test_a_jobs_hyperparameters_file_in_a_bucket_is_not_read_with_the_servers_credentials(api, members, bucket):
    await members()
    job = {"name": "hp", "command": "python -c pass", "workers": 1}
    status, body = await api(
        "POST", f"{W}/jobs", {**job, "hyperParameters": f"s3://{bucket}/private/a.txt"}, user="dev"
    )
    _refused(status, body, "hyperParameters")
    assert "the bucket's data" not in str(body)


ENV_PROBE = """
import json
import os


class Probe:
    def process(self, data):
        return json.dumps(sorted(k for k in os.environ if k.startswith(("AWS_", "OSS_")))).encode(), 200
"""


async def test_an_instance_holds_none_of_the_servers_cloud_credentials(api, members, bucket, tmp_path):
    import asyncio

    import requests

    await members()
    folder = tmp_path / "probe"
    folder.mkdir()
    (folder / "app.py").write_text(ENV_PROBE)
    service = {"name": "test_env", "processor_type": "python", "processor_path": str(folder)}
    status, body = await api(
        "POST", f"{W}/services", {**service, "processor_entry": "app.py", "metadata": {"instance": 1}}, user="dev"
    )
    assert status == 201, body
    try:
        for _ in range(240):  # until the instance answers
            answer = await asyncio.to_thread(
                requests.post, body["endpoint"], data=b"{}", headers={"Authorization": body["token"]}, timeout=30
            )
            if answer.status_code == 200:
                break
            await asyncio.sleep(0.5)
        assert answer.status_code == 200, answer.text
        seen = answer.json()
        assert "AWS_ACCESS_KEY_ID" not in seen and "AWS_SECRET_ACCESS_KEY" not in seen, seen
        assert "AWS_ENDPOINT_URL" in seen, seen  # where buckets are is no secret; the keys to them are
    finally:
        assert (await api("DELETE", f"{W}/services/test_env", user="dev"))[0] == 204
