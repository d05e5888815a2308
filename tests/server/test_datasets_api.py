"""The dataset registry through its REST API, as the sidebar and the client use it."""

import os
import tempfile
from pathlib import Path

from tests.fixtures.datasets import write_manifest


async def test_register_scan_list_and_versions(api, image_folder):
    status, ds = await api(
        "POST",
        "/workspaces/default/datasets",
        {"name": "pets", "source": "pets", "scan": True, "tags": {"team": "vision"}},
    )
    assert status == 201, ds
    assert ds["item_count"] == 8 and ds["latest_version"] == 1 and ds["data_type"] == "image"
    assert ds["source_uri"] == str(image_folder) and ds["created_by"] == "owner"
    assert ds["id"].startswith("data-") and ds["tags"] == {"team": "vision"}
    expected_bytes = sum(p.stat().st_size for p in image_folder.rglob("*.png"))
    assert ds["total_bytes"] == expected_bytes

    status, listed = await api("GET", "/workspaces/default/datasets")
    assert status == 200
    row = next(d for d in listed if d["name"] == "pets")
    for key in (
        "id",
        "name",
        "data_type",
        "item_count",
        "total_bytes",
        "latest_version",
        "source_uri",
        "visibility",
        "created_by",
        "created_at",
    ):
        assert key in row

    status, page = await api("GET", "/workspaces/default/datasets/pets/items", params={"limit": 100})
    assert status == 200 and page["total"] == 8
    sources = sorted(i["line"]["data"]["source"] for i in page["items"])
    assert sources == sorted(str(p) for p in image_folder.rglob("*.png"))

    status, versions = await api("GET", "/workspaces/default/datasets/pets/versions")
    assert [(v["version"], v["item_count"]) for v in versions] == [(1, 8)]
    assert "created_at" in versions[0]


async def test_manifest_file_and_bad_line(api, pai_root):
    write_manifest(
        pai_root / "texts.manifest", [{"data": {"source": "good product"}}, {"data": {"source": "bad product"}}]
    )
    status, ds = await api("POST", "/workspaces/default/datasets", {"name": "texts", "source": "texts.manifest"})
    assert status == 201, ds
    assert ds["item_count"] == 2 and ds["data_type"] == "text" and ds["source_kind"] == "manifest"

    (pai_root / "broken.manifest").write_text('{"data":{"source":"a"}}\n{"data": oops}\n')
    status, err = await api("POST", "/workspaces/default/datasets", {"name": "broken", "source": "broken.manifest"})
    assert status == 400 and "line 2" in err["error"]["message"]
    status, listed = await api("GET", "/workspaces/default/datasets")
    assert "broken" not in [d["name"] for d in listed]


async def test_roles_and_private_visibility(api, members, image_folder):
    await members("default")
    status, err = await api("POST", "/workspaces/default/datasets", {"name": "g", "source": "pets"}, user="guest")
    assert status == 403 and "dataset.create" in err["error"]["message"]
    status, _ = await api(
        "POST", "/workspaces/default/datasets", {"name": "mine", "source": "pets", "visibility": "private"}, user="dev"
    )
    assert status == 201
    status, _ = await api("POST", "/workspaces/default/datasets", {"name": "shared", "source": "pets"}, user="dev")
    assert status == 201

    async def names(user):
        status, listed = await api("GET", "/workspaces/default/datasets", user=user)
        assert status == 200
        return sorted(d["name"] for d in listed)

    assert await names("dev") == ["mine", "shared"]
    assert await names("admin") == ["mine", "shared"]
    assert await names("owner") == ["mine", "shared"]
    assert await names("guest") == ["shared"]
    assert await names("labeladmin") == ["shared"]
    status, _ = await api("GET", "/workspaces/default/datasets/mine", user="guest")
    assert status == 404
    status, _ = await api("GET", "/workspaces/default/datasets/pets", user="stranger")
    assert status == 403

    # AlgorithmDeveloper deletes only what they registered; Administrator deletes anything
    status, _ = await api("POST", "/workspaces/default/datasets", {"name": "adm", "source": "pets"}, user="admin")
    status, err = await api("DELETE", "/workspaces/default/datasets/adm", user="dev")
    assert status == 403 and "only on objects you created" in err["error"]["message"]
    status, _ = await api("DELETE", "/workspaces/default/datasets/shared", user="guest")
    assert status == 403
    status, _ = await api("DELETE", "/workspaces/default/datasets/shared", user="dev")
    assert status == 204
    status, _ = await api("DELETE", "/workspaces/default/datasets/mine", user="admin")
    assert status == 204
    assert await names("dev") == ["adm"]


async def test_duplicate_and_bad_sources(api, pai_root, image_folder, tmp_path):
    body = {"name": "pets", "source": "pets", "scan": True}
    assert (await api("POST", "/workspaces/default/datasets", body))[0] == 201
    status, err = await api("POST", "/workspaces/default/datasets", dict(body, name="PETS"))
    assert status == 409 and err["error"]["field"] == "name"

    outside = Path(tempfile.mkdtemp(prefix="pai-outside-"))  # outside pytest's folder, which the server allows
    (outside / "secret.png").write_bytes(b"x")
    (pai_root / "link").symlink_to(outside)
    cases = {
        os.path.relpath(outside, pai_root): "outside the allowed folders",
        str(outside): "outside the allowed folders",
        "link": "outside the allowed folders",
        "nope/missing": "does not exist",
        "ftp://host/x": "unsupported scheme",
    }
    for source, words in cases.items():
        status, err = await api("POST", "/workspaces/default/datasets", {"name": "bad", "source": source})
        assert status == 400 and words in err["error"]["message"], (source, err)
        assert err["error"]["field"] == "source"
    status, err = await api("POST", "/workspaces/default/datasets", {"name": "bad name!", "source": "pets"})
    assert status == 400 and err["error"]["field"] == "name"
    status, listed = await api("GET", "/workspaces/default/datasets")
    assert [d["name"] for d in listed] == ["pets"]


async def test_rescan_unchanged_shares_items_and_progress_is_reported(api, image_folder):
    await api("POST", "/workspaces/default/datasets", {"name": "pets", "source": "pets", "scan": True, "glob": "cat/*"})
    status, v2 = await api("POST", "/workspaces/default/datasets/pets/versions", {})
    assert status == 201 and v2["version"] == 2 and v2["item_count"] == 5
    status, versions = await api("GET", "/workspaces/default/datasets/pets/versions")
    assert versions[0]["digest"] == versions[1]["digest"]
    status, diff = await api("GET", "/workspaces/default/datasets/pets/diff", params={"from": "1", "to": "2"})
    assert diff["unchanged_count"] == 5 and diff["added_count"] == diff["removed_count"] == 0
    status, prog = await api("GET", "/workspaces/default/datasets/pets/progress")
    assert status == 200 and prog["running"] is False and prog["items"] == 5
    status, err = await api("GET", "/workspaces/default/datasets/pets/versions/9")
    assert status == 404 and "versions are 1 to 2" in err["error"]["message"]


async def test_items_samples_and_manifest_stream(api, jp_fetch):
    status, samples = await api("GET", "/dataset-samples")
    assert {s["name"] for s in samples} == {"digits", "reviews", "shapes"}
    status, ds = await api("POST", "/workspaces/default/datasets", {"name": "reviews", "source": "sample://reviews"})
    assert status == 201 and ds["item_count"] == 200 and ds["data_type"] == "text" and ds["origin"] == "public"
    status, page = await api(
        "GET", "/workspaces/default/datasets/reviews/items", params={"offset": "150", "limit": "100"}
    )
    assert page["total"] == 200 and len(page["items"]) == 50 and page["items"][0]["index"] == 150
    label = page["items"][0]["line"]["label-1000000000000000001"]["results"][0]
    assert label["type"] == "survey/value" and label["data"] in ("positive", "negative")

    resp = await jp_fetch("pai-lab", "api", "v1", "workspaces", "default", "datasets", "reviews", "manifest")
    lines = resp.body.decode().splitlines()
    assert len(lines) == 200 and lines[0].startswith('{"data":{"source":"The ')


async def test_register_without_scan_then_scan_a_version(api, image_folder):
    status, ds = await api("POST", "/workspaces/default/datasets", {"name": "later", "source": "pets"})
    assert status == 201 and ds["latest_version"] is None and ds["item_count"] == 0
    status, err = await api("GET", "/workspaces/default/datasets/later/items")
    assert status == 404 and "no version yet" in err["error"]["message"]
    status, v1 = await api("POST", "/workspaces/default/datasets/later/versions", {"description": "first scan"})
    assert status == 201 and v1["version"] == 1 and v1["item_count"] == 8
    status, ds = await api("GET", "/workspaces/default/datasets/later")
    assert ds["data_type"] == "image" and ds["latest_version"] == 1 and ds["item_count"] == 8


async def test_an_item_is_read_where_the_policy_allows_and_nowhere_else(api, jp_fetch, image_folder):
    def fetch(name, what, **params):
        return jp_fetch("pai-lab", "api", "v1", "workspaces", "default", "datasets", name, what, params=params)

    status, _ = await api("POST", "/workspaces/default/datasets", {"name": "pets", "source": "pets", "scan": True})
    assert status == 201
    status, page = await api("GET", "/workspaces/default/datasets/pets/items", params={"limit": 1})
    first = page["items"][0]
    path = Path(first["source"])
    assert (await fetch("pets", "content", key=first["key"])).body == path.read_bytes()
    assert (await fetch("pets", "content", index="0")).body == path.read_bytes()
    assert (await fetch("pets", "thumbnail", index="0")).body.startswith(b"\x89PNG")

    status, err = await api("GET", "/workspaces/default/datasets/pets/content")
    assert status == 400 and err["error"]["field"] == "key"
    status, err = await api("GET", "/workspaces/default/datasets/pets/content", params={"index": "8"})
    assert status == 404 and err["error"]["field"] == "key"

    # the file swapped for a link to one outside the allowed folders: refused, its bytes never sent
    outside = Path(tempfile.mkdtemp()) / "secret.txt"
    outside.write_text("SECRET-OUTSIDE")
    path.unlink()
    path.symlink_to(outside)
    for what in ("content", "thumbnail"):
        status, err = await api("GET", f"/workspaces/default/datasets/pets/{what}", params={"key": first["key"]})
        assert status == 400 and err["error"]["field"] == "key", err
        assert "outside the allowed folders" in err["error"]["message"] and "SECRET-OUTSIDE" not in str(err)
