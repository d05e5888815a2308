"""Labeling through the Python client and the `pai label` CLI against a real `pai server`, and
durability: a server killed with SIGKILL mid-burst loses no acknowledged answer and stores
none twice."""

from __future__ import annotations

import json
import threading
import time

import pytest

from tests.conftest import start_pai_server


def test_client_labels_checks_and_exports(live_server, unique_name, tmp_path):
    ws = live_server.client().workspace("default")
    name = unique_name("det")
    task = ws.labeling.create_task(
        name,
        "object-detection",
        labels=["cat", "dog"],
        package_size=2,
        lines=[{"data": {"source": f"img/{i}.jpg"}} for i in range(3)],
    )
    assert ws.labeling.get(name).id == task.id and task.info.state == "Labeling"
    task.prelabel(
        lambda data: {"width": 100, "height": 100, "shapes": [{"box": [1, 1, 50, 50], "label": "cat"}]},
        source="model:toy",
        progress=False,
    )
    pkg = task.claim()
    items = task.items(pkg)
    assert [i.prelabel_source for i in items] == ["model:toy", "model:toy"]
    assert all(i.label is None for i in items)  # suggestions are not answers
    for item in items:
        suggestion = item.prelabel
        suggestion[0]["data"][0]["labels"]["单选"] = "dog"  # the labeler corrects the suggestion
        ack = task.submit(item.seq, results=suggestion)
        assert ack.revision == 1 and not ack.duplicate
    task.submit_package(pkg)
    second = task.claim()
    assert second.number == 2
    task.submit(2, skip="blurred")
    task.submit_package(second)
    assert task.claim() is None
    stats = task.stats()
    assert (stats.labeled, stats.skipped, stats.packages_left) == (3, 1, 0)
    assert task.refresh().state == "Completed"
    text = task.export("itag")
    out = tmp_path / "out" / f"{name}.manifest"
    result = task.export("itag", out)
    assert out.read_text(encoding="utf-8") == text and result.items == 3
    lines = [json.loads(line) for line in text.splitlines()]
    assert lines[0][f"label-{task.id}"]["results"][0]["data"][0]["labels"] == {"单选": "dog"}
    assert f"label-{task.id}" not in lines[2]  # the skipped item has no answer
    coco = task.export("coco", tmp_path / "coco.json")
    assert json.loads((tmp_path / "coco.json").read_text())["categories"][1]["name"] == "dog" and coco.items == 3
    with pytest.raises(ValueError, match="folder"):
        task.export("yolo")
    assert name in [t.name for t in ws.labeling.list()]
    assert set(ws.labeling.to_pandas()["name"]) >= {name}


def test_cli_label_commands(cli, unique_name, tmp_path):
    manifest = tmp_path / "texts.manifest"
    manifest.write_text('{"data":{"source":"good phone"}}\nbad battery\n', encoding="utf-8")
    name = unique_name("txt")
    rc, out, err = cli("label", "templates")
    assert rc == 0 and "object-detection" in out and "asr" in out
    rc, out, err = cli(
        "label",
        "create",
        name,
        "--template",
        "text-classification",
        "--manifest",
        str(manifest),
        "--labels",
        "pos,neg",
        "--flow",
        "label-check",
    )
    assert rc == 0, err
    assert f"[Info] Labeling task [{name}] created" in out and "2 items" in out
    rc, out, _ = cli("label", "ls")
    assert rc == 0 and name in out and "Labeling" in out
    rc, out, _ = cli("label", "show", name, "--json")
    shown = json.loads(out)
    assert (shown["total"], shown["flow"], shown["labeled"]) == (2, "label-check", 0)

    from pai_lab.client import PaiClient

    task = PaiClient().workspace("default").labeling.get(name)
    pkg = task.claim()
    task.submit(0, "pos")
    task.submit(1, "neg")
    task.submit_package(pkg)
    rc, out, _ = cli("label", "stats", name)
    assert rc == 0 and "labeled   2/2" in out
    target = tmp_path / "result.manifest"
    rc, out, err = cli("label", "export", name, "--format", "itag", "--out", str(target))
    assert rc == 0, err
    exported = target.read_text(encoding="utf-8").splitlines()
    assert json.loads(exported[1]) == {
        "data": {"source": "bad battery"},
        f"label-{task.id}": {
            "results": [{"questionId": "2", "data": "neg", "markTitle": "单选", "type": "survey/value"}]
        },
    }

    copy = unique_name("imp")
    rc, out, err = cli("label", "import", str(target), "--format", "itag", "--name", copy)
    assert rc == 0, err
    assert "2 labeled" in out
    rc, out, _ = cli("label", "show", copy, "--json")
    imported = json.loads(out)
    assert imported["template"] == "text-classification" and imported["state"] == "Completed"
    rc, _, _ = cli("label", "export", copy, "--out", str(tmp_path / "again.manifest"))
    again = (tmp_path / "again.manifest").read_text(encoding="utf-8")
    assert again == target.read_text(encoding="utf-8").replace(task.id, imported["id"])

    rc, out, _ = cli("label", "offline", name)
    assert rc == 0 and "offline" in out
    rc, out, _ = cli("label", "show", name, "--json")
    assert json.loads(out)["state"] == "Offline"
    rc, out, _ = cli("label", "online", name)
    assert rc == 0 and "Checking" in out
    rc, _, err = cli("label", "export", name, "--format", "coco", "--out", str(tmp_path / "x.json"))
    assert rc == 2 and err.startswith("error: COCO holds boxes") and len(err.strip().splitlines()) == 1
    rc, _, err = cli("label", "create", "x", "--manifest", str(manifest))
    assert rc == 2 and "--template" in err
    rc, _, err = cli(
        "label",
        "create",
        unique_name("g"),
        "--template",
        "ner",
        "--manifest",
        str(manifest),
        "--labels",
        "a",
        user="guest",
    )
    assert rc == 2 and "label.manage" in err
    template = tmp_path / "review.yaml"
    tname = unique_name("tpl").replace("_", "-")
    template.write_text(
        f"name: {tname}\ncontents:\n  - {{type: text, key: body}}\nquestions:\n"
        "  - {type: single, title: verdict, labels: [ok, spam]}\n",
        encoding="utf-8",
    )
    rc, out, err = cli("label", "templates", "--add", str(template))
    assert rc == 0 and f"[Info] Template [{tname}] stored" in out, err
    spec = tmp_path / "task.yaml"
    reviews = tmp_path / "reviews.manifest"
    reviews.write_text('{"data":{"body":"buy now"}}\n', encoding="utf-8")
    spec.write_text(f"name: {name}-rev\ntemplate: {tname}\nmanifest: {reviews}\nflow: label-accept\n", encoding="utf-8")
    rc, out, err = cli("label", "create", "-f", str(spec), "--json")
    assert rc == 0, err
    made = json.loads(out)
    assert (made["template"], made["flow"], made["total"]) == (tname, "label-accept", 1)

    rc, out, _ = cli("label", "rm", copy)
    assert rc == 0
    rc, _, err = cli("label", "show", copy)
    assert rc == 2 and "no labeling task" in err


def test_answers_survive_a_server_killed_mid_burst(tmp_path):
    root = tmp_path / "root"
    server = start_pai_server(root)
    try:
        task = (
            server.client()
            .workspace("default")
            .labeling.create_task(
                "burst",
                "image-classification",
                labels=["cat", "dog"],
                package_size=200,
                lines=[{"data": {"source": f"{i}.jpg"}} for i in range(200)],
            )
        )
        task.claim()
        acked: dict[int, str] = {}
        tried: dict[int, str] = {}
        stop = threading.Event()

        def burst():
            for i in range(200):
                if stop.is_set():
                    return
                tried[i] = f"answer-{i}"
                try:
                    ack = task.submit(i, "cat" if i % 2 else "dog", client_id=tried[i])
                except Exception:  # noqa: BLE001 - the server died under us: this one was never acknowledged
                    return
                acked[i] = ack.client_id

        worker = threading.Thread(target=burst)
        worker.start()
        deadline = time.time() + 60
        while len(acked) < 40 and worker.is_alive() and time.time() < deadline:
            time.sleep(0.005)
        server.proc.kill()  # SIGKILL: no shutdown, no flush
        server.proc.wait(10)
        stop.set()
        worker.join(30)
        assert 40 <= len(acked) < 200
    finally:
        server.stop()

    (root / ".pai_lab" / "server.json").unlink(missing_ok=True)  # the dead server's runtime file
    server = start_pai_server(root)
    try:
        task = server.client().workspace("default").labeling.get("burst")
        items = {i.seq: i for i in task.all_items(0, 200)}
        for seq, client_id in acked.items():
            history = task.history(seq)
            assert [h.client_id for h in history] == [client_id], seq  # there, exactly once
            assert items[seq].label[0]["data"] == ("cat" if seq % 2 else "dog")
        # the client retries everything it sent; what was stored is not stored again
        for seq, client_id in tried.items():
            ack = task.submit(seq, "cat" if seq % 2 else "dog", client_id=client_id)
            if seq in acked:
                assert ack.duplicate, seq
        for seq in tried:
            assert len(task.history(seq)) == 1
        assert task.refresh().labeled == len(tried)
    finally:
        server.stop()


def test_cli_package_verbs_claim_release_reassign_and_people(cli, unique_name, tmp_path):
    manifest = tmp_path / "two.manifest"
    manifest.write_text("first text\nsecond text\n", encoding="utf-8")
    name = unique_name("pk")
    rc, _, err = cli(
        "label",
        "create",
        name,
        "--template",
        "text-classification",
        "--manifest",
        str(manifest),
        "--labels",
        "a,b",
        "--package-size",
        "1",
    )
    assert rc == 0, err

    rc, out, err = cli("label", "people", name, "--labelers", "dev,ops")
    assert rc == 0, err
    assert "labelers   dev, ops" in out

    rc, out, err = cli("label", "claim", name, user="dev")
    assert rc == 0, err
    assert f"You hold package 1 of [{name}]" in out
    rc, _, err = cli("label", "release", name, "1", user="ops")
    assert rc == 2 and "only the holder of package 1" in err

    rc, out, err = cli("label", "reassign", name, "1", "--to", "ops")
    assert rc == 0, err
    assert "now held by ops" in out
    rc, out, _ = cli("label", "packages", name, "--json")
    by_number = {p["number"]: p for p in json.loads(out)}
    assert (by_number[1]["holder"], by_number[1]["state"]) == ("ops", "labeling")
    assert by_number[2]["holder"] is None

    rc, _, err = cli("label", "reassign", name, "1", "--to", "stranger")
    assert rc == 2 and "'stranger' is not a labeler" in err
    rc, _, err = cli("label", "reassign", name, "1", "--to", "dev", user="dev")
    assert rc == 2 and "only a task admin" in err

    rc, out, err = cli("label", "release", name, "1", user="ops")
    assert rc == 0, err
    assert "back in the pool" in out
    rc, out, _ = cli("label", "packages", name, "--state", "labeling", "--json")
    assert json.loads(out) == []
    rc, _, err = cli("label", "claim", name, "--stage", "check")
    assert rc == 2 and "no check stage" in err
