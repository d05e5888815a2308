"""S3 prefixes on the loopback S3 server (moto in server mode): register, scan, versions, secrets."""

import pytest

pytestmark = pytest.mark.s3


async def test_scan_prefix_masks_secrets_and_versions(api, jp_fetch, s3_images):
    uri, options, client, bucket = s3_images
    status, ds = await api(
        "POST",
        "/workspaces/default/datasets",
        {"name": "s3pets", "source": uri, "scan": True, "glob": "*.png", "storage_options": options},
    )
    assert status == 201, ds
    assert ds["item_count"] == 6 and ds["data_type"] == "image" and ds["source_kind"] == "s3"
    assert ds["storage_options"]["secret"] == "***" and ds["storage_options"]["key"] == options["key"]
    status, again = await api("GET", "/workspaces/default/datasets/s3pets")
    assert "testing-secret" not in str(again) and "testing-secret" not in str(ds)

    status, page = await api("GET", "/workspaces/default/datasets/s3pets/items", params={"limit": 10})
    assert sorted(i["line"]["data"]["source"] for i in page["items"])[0] == f"s3://{bucket}/images/cat/000.png"
    assert all(i["stamp"] for i in page["items"])  # the ETag

    client.put_object(Bucket=bucket, Key="images/dog/009.png", Body=b"new")
    client.delete_object(Bucket=bucket, Key="images/cat/003.png")
    status, report = await api("GET", "/workspaces/default/datasets/s3pets/check")
    assert status == 200 and report["ok"] is False
    assert report["missing"] == ["cat/003.png"] and report["new"] == ["dog/009.png"]

    status, v2 = await api("POST", "/workspaces/default/datasets/s3pets/versions", {"description": "more dogs"})
    assert status == 201 and v2["version"] == 2 and v2["item_count"] == 6
    status, diff = await api("GET", "/workspaces/default/datasets/s3pets/diff", params={"from": "1", "to": "2"})
    assert [e["key"] for e in diff["added"]] == ["dog/009.png"]
    assert [e["key"] for e in diff["removed"]] == ["cat/003.png"]

    # read from the bucket with the stored (unmasked) credentials
    resp = await jp_fetch(
        "pai-lab", "api", "v1", "workspaces", "default", "datasets", "s3pets", "thumbnail", params={"index": "0"}
    )
    assert resp.code == 200 and resp.body.startswith(b"\x89PNG")


async def test_bad_credentials_and_missing_bucket(api, s3_images):
    _uri, options, _client, bucket = s3_images
    status, err = await api(
        "POST",
        "/workspaces/default/datasets",
        {"name": "nope", "source": f"s3://{bucket}-missing/x/", "scan": True, "storage_options": options},
    )
    assert status == 400 and "not found" in err["error"]["message"]
    status, err = await api(
        "POST",
        "/workspaces/default/datasets",
        {
            "name": "nope",
            "source": "s3://no-such-bucket/",
            "scan": True,
            "storage_options": {"client_kwargs": {"endpoint_url": "http://127.0.0.1:9"}},
        },
    )
    assert status == 400 and err["error"]["field"] in ("storage_options", "source")
    status, listed = await api("GET", "/workspaces/default/datasets")
    assert listed == []  # nothing half-registered


async def test_oss_alias_needs_an_endpoint(api, s3_images):
    _uri, options, _client, bucket = s3_images
    keys_only = {"key": options["key"], "secret": options["secret"]}
    status, err = await api(
        "POST",
        "/workspaces/default/datasets",
        {"name": "oss1", "source": f"oss://{bucket}/images/", "storage_options": keys_only},
    )
    assert status == 400 and "endpoint" in err["error"]["message"]
    oss_options = {
        "key": options["key"],
        "secret": options["secret"],
        "endpoint_url": options["client_kwargs"]["endpoint_url"],
    }
    status, ds = await api(
        "POST",
        "/workspaces/default/datasets",
        {"name": "oss1", "source": f"oss://{bucket}/images/", "scan": True, "storage_options": oss_options},
    )
    assert status == 201, ds
    assert ds["item_count"] == 7 and ds["source_uri"] == f"oss://{bucket}/images/"
