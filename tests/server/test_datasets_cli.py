"""The registry from a terminal (`pai dataset`, `pai dlc ... data_source`) and from a notebook
(the Python client and the preview widget), against a real `pai server`."""

import json

import pytest

from tests.fixtures.datasets import make_image_folder


@pytest.fixture
def live_pets(live_server, unique_name):
    """A fresh image folder under the live server's root; returns its path relative to the root."""
    rel = unique_name("pets")
    make_image_folder(live_server.root / rel, {"cat": 4, "dog": 2})
    return rel


def test_cli_register_versions_diff_manifest(cli, live_server, live_pets, unique_name):
    name = unique_name("ds")
    rc, out, err = cli("dataset", "register", name, live_pets, "--scan", "--tag", "team=vision")
    assert rc == 0, err
    assert f"[Info] Dataset [{name}] registered" in out and "6 items, version 1" in out

    rc, out, err = cli("dataset", "ls")
    assert rc == 0 and name in out
    row = next(line for line in out.splitlines() if name in line)
    assert "image" in row and " 6 " in row

    folder = live_server.root / live_pets
    (folder / "cat" / "000.png").unlink()
    (folder / "bird").mkdir()
    (folder / "bird" / "000.png").write_bytes((folder / "dog" / "000.png").read_bytes())
    (folder / "dog" / "001.png").write_bytes(b"now a different file")

    rc, out, err = cli("dataset", "check", name)
    assert rc == 1 and "1 missing, 1 changed" in out and "missing cat/000.png" in out

    rc, out, err = cli("dataset", "versions", name, "--new", "-d", "after cleanup")
    assert rc == 0, err
    assert "version 2: 6 items" in out

    rc, out, err = cli("dataset", "diff", name, "1", "2")
    assert rc == 0, err
    assert "1 added, 1 removed, 1 changed, 4 unchanged" in out
    assert "+ bird/000.png" in out and "- cat/000.png" in out and "~ dog/001.png" in out

    rc, out, err = cli("dataset", "manifest", name, "--version", "1")
    assert rc == 0, err
    lines = [json.loads(line) for line in out.splitlines()]
    assert len(lines) == 6 and str(folder / "cat" / "000.png") in [x["data"]["source"] for x in lines]
    assert out.splitlines()[0].startswith('{"data":{"source":')  # compact, as iTAG writes it

    rc, out, err = cli("dataset", "rm", name)
    assert rc == 0
    rc, out, err = cli("dataset", "show", name)
    assert rc == 2 and "no dataset" in err


def test_cli_errors_are_one_line(cli, live_pets, unique_name):
    rc, _out, err = cli("dataset", "register", unique_name("ds"), "../" * 40 + "etc")  # '..' out of every root
    assert rc == 2 and "outside the allowed folders" in err and len(err.strip().splitlines()) == 1
    name = unique_name("ds")
    assert cli("dataset", "register", name, live_pets)[0] == 0
    rc, _out, err = cli("dataset", "register", name, live_pets)
    assert rc == 2 and "already exists" in err
    rc, _out, err = cli("dataset", "register", unique_name("ds"), "s3://bucket/x", user="guest")
    assert rc == 2 and "may not dataset.create" in err


def test_dlc_data_source_and_code_source(cli, live_server, live_pets, unique_name):
    name = unique_name("src")
    rc, out, err = cli(
        "dlc",
        "create",
        "data_source",
        "--display_name",
        name,
        "--file_system_id",
        live_pets,
        "--mount_path",
        "/root/data/pets/",
    )
    assert rc == 0, err
    assert "| DataSourceId" in out and "| RequestId" in out and out.startswith("+-")
    source_id = next(tok for tok in out.split() if tok.startswith("data-"))
    assert len(source_id.split("-")[1]) == 14 and len(source_id.split("-")[2]) == 12

    rc, out, err = cli("dlc", "get", "data_source", "--display_name", name)
    assert rc == 0, err
    assert source_id in out and "| Total" in out and "| 1 " in out.split("| Total")[1]
    rc, out, err = cli("dlc", "get", "data_source", source_id)
    assert rc == 0 and "/root/data/pets/" in out and "| MountPath" in out

    rc, out, err = cli("dlc", "delete", "data_source", source_id)  # no terminal: must ask for --force
    assert rc == 2 and "--force" in err
    rc, out, err = cli("dlc", "delete", "data_source", source_id, "--force")
    assert rc == 0 and source_id in out
    rc, out, err = cli("dlc", "get", "data_source", source_id)
    assert rc == 2

    rc, out, err = cli(
        "dlc",
        "create",
        "code_source",
        "--display_name",
        unique_name("code"),
        "--code_repo_url",
        "https://github.com/tensorflow/examples",
        "--code_branch",
        "master",
    )
    assert rc == 0, err
    code_id = next(tok for tok in out.split() if tok.startswith("code-"))
    rc, out, err = cli("dlc", "get", "code_source", code_id)
    assert "https://github.com/tensorflow/examples" in out and "/root/code/" in out
    rc, out, err = cli("dlc", "delete", "code_source", code_id, "--force")
    assert rc == 0


def test_client_register_read_and_preview(live_server, live_pets, unique_name):
    ws = live_server.client("dev").workspace("default")
    name = unique_name("ds")
    ds = ws.datasets.register(name, live_pets, scan=True, progress=False)
    assert ds.data_type == "image" and ds.info.item_count == 6 and ds.latest_version == 1
    assert name in ws.datasets and ws.datasets[name].id == ds.id

    frame = ds.to_pandas()
    assert len(frame) == 6 and set(frame["key"]) == {f"cat/{i:03d}.png" for i in range(4)} | {
        "dog/000.png",
        "dog/001.png",
    }
    with ds.open("dog/001.png") as fh:
        assert fh.read(8) == b"\x89PNG\r\n\x1a\n"

    preview = ds.preview(page_size=4)
    assert "6 items" in preview.header.value and preview.pages == 2
    grid = preview.body.children[0]
    assert len(grid.children) == 4
    first_png = bytes(grid.children[0].children[0].value)
    assert first_png.startswith(b"\x89PNG")
    preview.next_button.click()
    assert preview.page_number == 1 and len(preview.body.children[0].children) == 2

    pipeline = ds.to_tf_dataset(image_size=(8, 8), batch_size=6, shard=None)
    assert pipeline.class_names == ["cat", "dog"]  # one folder per class
    images, labels = next(iter(pipeline))
    assert images.shape == (6, 8, 8, 3) and sorted(labels.numpy().tolist()) == [0, 0, 0, 0, 1, 1]

    texts = ws.datasets.register(unique_name("texts"), items=["good", "bad", "fine"], progress=False)
    assert texts.data_type == "text" and texts.info.item_count == 3
    assert [line["data"]["source"] for line in texts.manifest()] == ["good", "bad", "fine"]
    rows = texts.preview().body.children[0].value
    assert "good" in rows and "<table" in rows

    guest = live_server.client("guest").workspace("default")
    with pytest.raises(Exception) as info:
        guest.datasets.rm(name)
    assert "may not dataset.delete" in str(info.value)
    ws.datasets.rm(name)
    assert name not in ws.datasets


@pytest.mark.s3
def test_cli_registers_a_bucket_prefix_and_hides_the_secret(cli, s3_images, unique_name):
    uri, options, _client, _bucket = s3_images
    name = unique_name("s3")
    rc, out, err = cli(
        "dataset",
        "register",
        name,
        uri,
        "--scan",
        "--glob",
        "*.png",
        "--endpoint-url",
        options["client_kwargs"]["endpoint_url"],
        "--storage-option",
        f"key={options['key']}",
        "--storage-option",
        f"secret={options['secret']}",
    )
    assert rc == 0, err
    assert "6 items, version 1" in out and options["secret"] not in out
    rc, out, err = cli("dataset", "show", name, "--json")
    shown = json.loads(out)
    assert shown["storage_options"]["secret"] == "***" and shown["source_kind"] == "s3"
    rc, out, err = cli("dataset", "items", name, "--limit", "2")
    assert rc == 0 and "cat/000.png" in out and "(2 of 6 items, version 1)" in out


def test_preview_plays_audio(live_server, unique_name):
    import wave

    folder = live_server.root / unique_name("sounds")
    folder.mkdir()
    for i in range(3):
        with wave.open(str(folder / f"{i}.wav"), "wb") as wav:
            wav.setnchannels(1)
            wav.setsampwidth(2)
            wav.setframerate(8000)
            wav.writeframes(b"\x00\x01" * 800)
    ws = live_server.client().workspace("default")
    ds = ws.datasets.register(unique_name("audio"), folder.name, scan=True, progress=False)
    assert ds.data_type == "audio"
    players = ds.preview().body.children[0].children
    assert len(players) == 3
    audio = players[0].children[1]
    assert audio.format == "wav" and bytes(audio.value[:4]) == b"RIFF"
