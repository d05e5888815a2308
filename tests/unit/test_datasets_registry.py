"""The registry's in-process functions, as labeling and training call them, on a real store."""

import pytest

from pai_lab.datasets import compare, items, versions
from pai_lab.datasets import service as svc
from pai_lab.datasets.schemas import DatasetCreate
from pai_lab.datasets.sources import Roots
from pai_lab.errors import BadInput, Conflict, Forbidden, NotFound
from pai_lab.platform import Platform


@pytest.fixture
def platform(tmp_path):
    p = Platform(tmp_path / "root", owner="owner").start()
    yield p
    p.store.dispose()


def register(platform, **spec):
    with platform.store.transaction() as s:
        return svc.register_dataset(
            s,
            "owner",
            "default",
            DatasetCreate(**spec),
            roots=Roots.from_platform(platform),
            state_dir=platform.state_dir,
        )


def test_register_manifest_version_then_iter_items(platform):
    lines = [
        {
            "data": {"source": f"text {i}"},
            "label-1234567890123456789": {
                "results": [
                    {"questionId": "1", "data": "a" if i % 2 else "b", "markTitle": "单选", "type": "survey/value"}
                ]
            },
        }
        for i in range(5)
    ]
    with platform.store.transaction() as s:
        ds = svc.register_manifest_version(s, "owner", "default", "export_1", lines, description="first export")
    assert ds.item_count == 5 and ds.latest_version == 1 and ds.origin == "labeling" and ds.data_type == "text"
    with platform.store.transaction() as s:
        again = svc.register_manifest_version(s, "owner", "default", "export_1", lines[:3])
        assert again.id == ds.id and again.latest_version == 2 and again.item_count == 3
        assert list(svc.iter_items(s, "owner", "default", "export_1")) == lines[:3]
        assert list(svc.iter_items(s, "owner", "default", ds.id, version=1)) == lines  # by id, old version kept
        with pytest.raises(NotFound):
            list(svc.iter_items(s, "owner", "default", "export_1", version=7))


def test_failed_registration_leaves_nothing(platform):
    with pytest.raises(BadInput) as info, platform.store.transaction() as s:
        svc.register_manifest_version(s, "owner", "default", "half", [{"data": {"source": "ok"}}, 42])
    assert "item 2" in info.value.message
    with platform.store.transaction() as s:
        assert svc.list_datasets(s, "owner", "default") == []
        from pai_lab.datasets.tables import DatasetVersionRow, ManifestChunkRow

        assert s.query(DatasetVersionRow).count() == 0 and s.query(ManifestChunkRow).count() == 0


def test_many_items_page_across_chunks_and_diff(platform, tmp_path):
    folder = platform.root_dir / "many"
    for d in range(2):
        (folder / f"d{d}").mkdir(parents=True)
        for i in range(5100):
            (folder / f"d{d}" / f"{i:05d}.txt").write_bytes(b"x" * (i % 7))
    (folder / "d0" / "tab\there.txt").write_bytes(b"odd name")
    ds = register(platform, name="many", source="many", scan=True)
    assert ds.item_count == 10201 and ds.data_type == "text"
    with platform.store.transaction() as s:
        page = items.item_page(s, "owner", "default", "many", offset=9995, limit=10)
        assert [i.index for i in page.items] == list(range(9995, 10005))  # spans two stored chunks
        keys = {i.key for i in items.item_page(s, "owner", "default", "many", limit=10000).items}
        assert "d0/tab\there.txt" in keys
    (folder / "d1" / "00010.txt").write_bytes(b"changed!")
    (folder / "d1" / "00011.txt").unlink()
    (folder / "d1" / "extra.txt").write_bytes(b"new")
    roots = Roots.from_platform(platform)
    with platform.store.transaction() as s:
        v2 = versions.new_version(s, "owner", "default", "many", roots=roots)
        diff = compare.diff_versions(s, "owner", "default", "many", 1, v2.version)
    assert (diff.added_count, diff.removed_count, diff.changed_count) == (1, 1, 1)
    assert [e.key for e in diff.changed] == ["d1/00010.txt"] and diff.changed[0].size == 8
    assert diff.unchanged_count == 10201 - 2


def test_resolve_source_and_roles(platform):
    (platform.root_dir / "imgs").mkdir()
    (platform.root_dir / "imgs" / "a.png").write_bytes(b"png")
    register(platform, name="imgs", source="imgs")
    with platform.store.transaction() as s:
        uri, options = svc.resolve_source(s, "owner", "default", "imgs")
        assert uri == str(platform.root_dir / "imgs") and options == {}
        with pytest.raises(Forbidden):
            svc.resolve_source(s, "stranger", "default", "imgs")
    with pytest.raises(Conflict):
        register(platform, name="imgs", source="imgs")


def test_extra_allowed_root_and_escape(tmp_path):
    data = tmp_path / "shared_data"
    data.mkdir()
    (data / "x.csv").write_text("a,b\n1,2\n")
    p = Platform(tmp_path / "root", owner="owner", settings={"allowed_roots": [str(data)]}).start()
    ds = register(p, name="table", source=str(data / "x.csv"))
    assert ds.data_type == "tabular" and ds.item_count == 1 and ds.property == "file"
    with pytest.raises(BadInput) as info:
        register(p, name="etc", source="/etc")
    assert "outside the allowed folders" in info.value.message and str(data) in info.value.message


def test_links_inside_a_scanned_folder_stay_inside_the_roots(platform, tmp_path):
    folder = platform.root_dir / "linked"
    folder.mkdir()
    (folder / "real.txt").write_text("in")
    (tmp_path / "outside.txt").write_text("secret")
    (folder / "escape.txt").symlink_to(tmp_path / "outside.txt")
    (folder / "inside.txt").symlink_to(folder / "real.txt")
    (folder / ".hidden").write_text("left out")
    register(platform, name="linked", source="linked", scan=True)
    with platform.store.transaction() as s:
        keys = sorted(i.key for i in items.item_page(s, "owner", "default", "linked").items)
        version = versions.get_version(s, "owner", "default", "linked")
    assert keys == ["inside.txt", "real.txt"] and version.skipped == 1


def test_content_hash_on_request(platform):
    (platform.root_dir / "h").mkdir()
    (platform.root_dir / "h" / "a.bin").write_bytes(b"abc")
    register(platform, name="hashed", source="h", scan=True, hash=True)
    with platform.store.transaction() as s:
        item = items.item_page(s, "owner", "default", "hashed").items[0]
    import hashlib

    assert item.hash == hashlib.sha256(b"abc").hexdigest()


def test_unchanged_rescan_stores_no_second_copy(platform):
    from pai_lab.datasets.tables import ManifestChunkRow

    folder = platform.root_dir / "same"
    folder.mkdir()
    for i in range(30):
        (folder / f"{i}.txt").write_text(str(i))
    register(platform, name="same", source="same", scan=True)
    roots = Roots.from_platform(platform)
    with platform.store.transaction() as s:
        before = s.query(ManifestChunkRow).count()
        v2 = versions.new_version(s, "owner", "default", "same", roots=roots)
        assert s.query(ManifestChunkRow).count() == before
        assert list(svc.iter_items(s, "owner", "default", "same", version=v2.version)) == list(
            svc.iter_items(s, "owner", "default", "same", version=1)
        )
    (folder / "30.txt").write_text("30")
    with platform.store.transaction() as s:
        v3 = versions.new_version(s, "owner", "default", "same", roots=roots)
        assert v3.item_count == 31 and s.query(ManifestChunkRow).count() == before + 1


def test_resolve_source_of_samples_and_items(platform):
    shapes = register(platform, name="shapes", source="sample://shapes")
    assert shapes.origin == "public" and shapes.item_count == 60 and shapes.data_type == "image"
    with platform.store.transaction() as s:
        uri, _options = svc.resolve_source(s, "owner", "default", "shapes")
        first = next(svc.iter_items(s, "owner", "default", "shapes"))
        assert first["data"]["source"].startswith(uri + "/")  # a folder a job can mount
        svc.register_manifest_version(s, "owner", "default", "notes", [{"data": {"source": "a text"}}])
        with pytest.raises(BadInput) as info:
            svc.resolve_source(s, "owner", "default", "notes")
        assert "iter_items" in info.value.message
