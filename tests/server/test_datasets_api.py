"""The dataset registry through its REST API, as the sidebar and the client use it."""

from tests.fixtures.datasets import write_manifest


async def test_register_scan_list_and_versions(api, image_folder):
    status, ds = await api("POST", "/workspaces/default/datasets",
                           {"name": "pets", "source": "pets", "scan": True, "tags": {"team": "vision"}})
    assert status == 201, ds
    assert ds["item_count"] == 8 and ds["latest_version"] == 1 and ds["data_type"] == "image"
    assert ds["source_uri"] == str(image_folder) and ds["created_by"] == "owner"
    assert ds["id"].startswith("data-") and ds["tags"] == {"team": "vision"}
    expected_bytes = sum(p.stat().st_size for p in image_folder.rglob("*.png"))
    assert ds["total_bytes"] == expected_bytes

    status, listed = await api("GET", "/workspaces/default/datasets")
    assert status == 200
    row = next(d for d in listed if d["name"] == "pets")
    for key in ("id", "name", "data_type", "item_count", "total_bytes", "latest_version", "source_uri",
                "visibility", "created_by", "created_at"):
        assert key in row

    status, page = await api("GET", "/workspaces/default/datasets/pets/items", params={"limit": 100})
    assert status == 200 and page["total"] == 8
    sources = sorted(i["line"]["data"]["source"] for i in page["items"])
    assert sources == sorted(str(p) for p in image_folder.rglob("*.png"))

    status, versions = await api("GET", "/workspaces/default/datasets/pets/versions")
    assert [(v["version"], v["item_count"]) for v in versions] == [(1, 8)]
    assert "created_at" in versions[0]


async def test_manifest_file_and_bad_line(api, pai_root):
    write_manifest(pai_root / "texts.manifest", [{"data": {"source": "good product"}},
                                                 {"data": {"source": "bad product"}}])
    status, ds = await api("POST", "/workspaces/default/datasets", {"name": "texts", "source": "texts.manifest"})
    assert status == 201, ds
    assert ds["item_count"] == 2 and ds["data_type"] == "text" and ds["source_kind"] == "manifest"

    (pai_root / "broken.manifest").write_text('{"data":{"source":"a"}}\n{"data": oops}\n')
    status, err = await api("POST", "/workspaces/default/datasets", {"name": "broken", "source": "broken.manifest"})
    assert status == 400 and "line 2" in err["error"]["message"]
    status, listed = await api("GET", "/workspaces/default/datasets")
    assert "broken" not in [d["name"] for d in listed]
