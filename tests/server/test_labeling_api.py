"""The labeling REST API as the sidebar, widgets and client use it: tasks, roles, the flow,
bad input, streamed exports, S3, and tasks over registered datasets."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import pytest

W = "/workspaces/default/labeling"
LINES = [{"data": {"source": f"img/{i}.jpg"}} for i in range(4)]
BUILTIN = [
    "text-classification",
    "ner",
    "relation",
    "image-classification",
    "object-detection",
    "ocr",
    "video-classification",
    "audio-classification",
    "audio-segmentation",
    "asr",
]


async def _task(api, members, **kw):
    await members()
    body = {
        "name": "pets",
        "template": "image-classification",
        "labels": ["cat", "dog"],
        "lines": LINES,
        "package_size": 2,
        "flow": "label-check",
        "labelers": ["dev"],
        "checkers": ["ops"],
        **kw,
    }
    status, task = await api("POST", f"{W}/tasks", body, user="labeladmin")
    assert status == 201, task
    return task


async def test_templates_lists_the_ten_builtins(api):
    status, templates = await api("GET", f"{W}/templates")
    assert status == 200
    assert [t["id"] for t in templates if t["kind"] == "builtin"] == BUILTIN


async def test_task_list_contract_and_who_may_do_what(api, members):
    task = await _task(api, members)
    assert len(task["id"]) == 19 and task["id"].isdigit()
    status, tasks = await api("GET", f"{W}/tasks", user="dev")
    assert status == 200
    row = tasks[0]
    assert {"id", "name", "template", "state", "total", "labeled", "checked", "accepted", "my_roles"} <= set(row)
    assert (row["name"], row["state"], row["total"], row["labeled"], row["my_roles"]) == (
        "pets",
        "Labeling",
        4,
        0,
        ["labeler"],
    )
    _, tasks = await api("GET", f"{W}/tasks", user="labeladmin")
    assert tasks[0]["my_roles"] == ["admin"]

    status, err = await api(
        "POST", f"{W}/tasks", {"name": "x", "template": "ner", "labels": ["a"], "lines": LINES}, user="guest"
    )
    assert status == 403 and "label.manage" in err["error"]["message"]
    status, err = await api("POST", f"{W}/tasks/pets/claim", {"stage": "label"}, user="ops")
    assert status == 403 and "assigned" in err["error"]["message"]
    status, err = await api("GET", f"{W}/tasks/pets/export", params={"format": "itag"}, user="dev")
    assert status == 403
    status, err = await api("GET", f"{W}/tasks", user="stranger")
    assert status == 403 and "not a member" in err["error"]["message"]
    status, _ = await api("GET", f"{W}/tasks", user=None)
    assert status == 401


async def test_label_then_check_over_rest(api, members):
    await _task(api, members)
    status, pkg = await api("POST", f"{W}/tasks/pets/claim", {"stage": "label"}, user="dev")
    assert status == 200 and (pkg["number"], pkg["holder"]) == (1, "dev")
    status, items = await api("GET", f"{W}/tasks/pets/packages/1/items", user="dev")
    assert [i["data"]["source"] for i in items] == ["img/0.jpg", "img/1.jpg"]
    for item, label in zip(items, ["cat", "dog"]):
        body = {"item": item["seq"], "answer": label, "client_id": f"c{item['seq']}"}
        status, ack = await api("POST", f"{W}/tasks/pets/answers", body, user="dev")
        assert status == 201 and ack["stage"] == "label" and not ack["duplicate"]
    status, ack = await api(
        "POST", f"{W}/tasks/pets/answers", {"item": 0, "answer": "cat", "client_id": "c0"}, user="dev"
    )
    assert status == 201 and ack["duplicate"] is True
    status, pkg = await api("POST", f"{W}/tasks/pets/packages/1/submit", user="dev")
    assert status == 200 and pkg["state"] == "check_pool"
    status, pkg = await api("POST", f"{W}/tasks/pets/claim", {"stage": "check"}, user="ops")
    assert pkg["state"] == "checking"
    status, pkg = await api("POST", f"{W}/tasks/pets/packages/1/pass", {"comment": ""}, user="ops")
    assert status == 200 and pkg["state"] == "done"
    status, stats = await api("GET", f"{W}/tasks/pets/stats", user="guest")
    assert status == 200 and (stats["labeled"], stats["checked"], stats["packages_left"]) == (2, 2, 1)
    assert stats["agreement"] == 1.0
    status, history = await api("GET", f"{W}/tasks/pets/items/0/history", user="labeladmin")
    assert [(h["stage"], h["author"]) for h in history] == [("label", "dev"), ("check", "ops")]


async def test_bad_requests_get_clear_errors_and_change_nothing(api, members):
    await _task(api, members)
    await api("POST", f"{W}/tasks/pets/claim", {"stage": "label"}, user="dev")
    cases = [
        ({"item": 0, "answer": "lion"}, 400, "unknown label 'lion'", "results"),
        (
            {"item": 0, "results": [{"questionId": "2", "data": "cat", "markTitle": "单选", "type": "image"}]},
            400,
            "survey/value",
            "results",
        ),
        ({"item": 9, "answer": "cat"}, 404, "no item 9", "item"),
        ({"item": 2, "answer": "cat"}, 409, "do not hold package 2", "package"),
        ({"item": 0, "answer": "cat", "colour": 1}, 400, "unknown field", "colour"),
    ]
    for body, code, text, field in cases:
        status, err = await api("POST", f"{W}/tasks/pets/answers", body, user="dev")
        assert status == code and text in err["error"]["message"] and err["error"]["field"] == field, err
    status, err = await api("POST", f"{W}/tasks/pets/packages/1/submit", user="dev")
    assert status == 409 and "no answer yet" in err["error"]["message"]
    status, err = await api("POST", f"{W}/tasks/pets/packages/x/submit", user="dev")
    assert status == 400
    status, err = await api("POST", f"{W}/tasks/pets/packages/1/pass", {}, user="labeladmin")
    assert status == 409 and "labeling" in err["error"]["message"]
    _, items = await api("GET", f"{W}/tasks/pets/items", user="dev")
    assert all(i["label"] is None for i in items)
    status, err = await api(
        "POST", f"{W}/tasks", {"name": "pets", "template": "ner", "labels": ["a"], "lines": LINES}, user="labeladmin"
    )
    assert status == 409 and err["error"]["field"] == "name"


async def test_exports_stream_and_refuse_formats_that_do_not_fit(api, members):
    task = await _task(api, members, flow="label")
    await api("POST", f"{W}/tasks/pets/claim", {"stage": "label"}, user="dev")
    await api("POST", f"{W}/tasks/pets/answers", {"item": 1, "answer": "dog"}, user="dev")
    status, text = await api("GET", f"{W}/tasks/pets/export", params={"format": "itag"}, user="labeladmin")
    assert status == 200
    lines = text.splitlines()
    assert lines[0] == '{"data":{"source":"img/0.jpg"}}'
    assert lines[1] == (
        '{"data":{"source":"img/1.jpg"},"label-' + task["id"] + '":{"results":[{"questionId":"2",'
        '"data":"dog","markTitle":"单选","type":"survey/value"}]}}'
    )
    status, doc = await api("GET", f"{W}/tasks/pets/export", params={"format": "label-studio"}, user="labeladmin")
    assert status == 200 and [t["id"] for t in doc] == [1, 2, 3, 4]
    status, err = await api("GET", f"{W}/tasks/pets/export", params={"format": "coco"}, user="labeladmin")
    assert status == 400 and "image-classification" in err["error"]["message"]
    status, err = await api("GET", f"{W}/tasks/pets/export", params={"format": "yolo"}, user="labeladmin")
    assert status == 400 and err["error"]["field"] in ("format",)


@pytest.mark.s3
async def test_export_to_s3(api, members, s3_bucket):
    import s3fs

    bucket, options = s3_bucket
    await _task(api, members, flow="label")
    await api("POST", f"{W}/tasks/pets/claim", {"stage": "label"}, user="dev")
    await api("POST", f"{W}/tasks/pets/answers", {"item": 0, "answer": "cat"}, user="dev")
    body = {"format": "itag", "to": f"s3://{bucket}/exports/pets.manifest", "storage_options": options}
    status, result = await api("POST", f"{W}/tasks/pets/export", body, user="labeladmin")
    assert status == 200 and result["items"] == 4, result
    _, streamed = await api("GET", f"{W}/tasks/pets/export", params={"format": "itag"}, user="labeladmin")
    fs = s3fs.S3FileSystem(**options)
    assert fs.cat(f"{bucket}/exports/pets.manifest").decode() == streamed
    assert [p for p in fs.ls(f"{bucket}/exports") if ".tmp-" in p] == []


async def test_task_over_a_registered_dataset_and_export_as_a_new_version(api, members):
    await members()
    items = [{"data": {"source": f"review {i}: {'great' if i % 2 else 'awful'}"}} for i in range(5)]
    status, ds = await api("POST", "/workspaces/default/datasets", {"name": "reviews", "items": items})
    assert status == 201, ds
    status, task = await api(
        "POST",
        f"{W}/tasks",
        {"name": "sentiment", "template": "text-classification", "labels": ["pos", "neg"], "dataset": "reviews"},
        user="labeladmin",
    )
    assert status == 201 and task["total"] == 5 and task["dataset"] == "reviews", task
    await api("POST", f"{W}/tasks/sentiment/claim", {"stage": "label"})
    _, its = await api("GET", f"{W}/tasks/sentiment/packages/1/items")
    assert [i["data"]["source"] for i in its] == [i["data"]["source"] for i in items]
    for i in its:
        await api(
            "POST",
            f"{W}/tasks/sentiment/answers",
            {"item": i["seq"], "answer": "pos" if "great" in i["data"]["source"] else "neg"},
        )
    await api("POST", f"{W}/tasks/sentiment/packages/1/submit")
    status, result = await api(
        "POST",
        f"{W}/tasks/sentiment/export",
        {"format": "itag", "to": "exports/sentiment.manifest", "register_as": "reviews-labeled"},
        user="labeladmin",
    )
    assert status == 200 and result["dataset"] == "reviews-labeled", result
    status, versions = await api("GET", "/workspaces/default/datasets/reviews-labeled/versions")
    assert status == 200 and versions[-1]["item_count"] == 5
    status, again = await api(
        "POST",
        f"{W}/tasks",
        {"name": "again", "template": "text-classification", "labels": ["pos", "neg"], "dataset": "reviews-labeled"},
    )
    assert status == 201 and again["total"] == 5
    _, first = await api("GET", f"{W}/tasks/again/items", params={"limit": "1"})
    assert json.dumps(first[0]["data"], ensure_ascii=False).startswith('{"source": "review 0')


async def test_server_side_exports_stay_inside_the_served_folders(api, pai_root, tmp_path):
    status, task = await api(
        "POST",
        f"{W}/tasks",
        {
            "name": "fenced",
            "template": "text-classification",
            "labels": ["a", "b"],
            "lines": [{"data": {"source": "x"}}],
        },
    )
    assert status == 201, task
    status, result = await api("POST", f"{W}/tasks/fenced/export", {"format": "itag", "to": "out/fenced.manifest"})
    assert status == 200, result
    assert (pai_root / "out" / "fenced.manifest").read_text() == '{"data":{"source":"x"}}\n'
    elsewhere = Path(tempfile.mkdtemp(prefix="pai-outside-")) / "elsewhere.manifest"  # pytest's folder is allowed
    for outside in (str(elsewhere), os.path.relpath(elsewhere, pai_root)):
        status, body = await api("POST", f"{W}/tasks/fenced/export", {"format": "itag", "to": outside})
        assert status == 400 and body["error"]["field"] == "to", body
    assert not elsewhere.exists()


async def test_fsspec_urls_onto_the_servers_disk_are_neither_read_nor_written(api, pai_root):
    # local:// and chained ...::file:// URLs name the server's disk, past the allowed folders
    outside = Path(tempfile.mkdtemp(prefix="pai-outside-"))
    (outside / "private.jpg").write_bytes(b"private bytes")
    for source in (f"local://{outside}/private.jpg", f"simplecache::file://{outside}/private.jpg"):
        status, body = await api(
            "POST",
            f"{W}/tasks",
            {"name": "far", "template": "object-detection", "labels": ["cat"], "lines": [{"data": {"source": source}}]},
        )
        assert status == 400 and body["error"]["field"] == "lines", body
        assert "locations are not read here" in body["error"]["message"]
    status, task = await api(
        "POST",
        f"{W}/tasks",
        {
            "name": "far",
            "template": "image-classification",
            "labels": ["cat"],
            "lines": [{"data": {"source": "a.jpg"}}],
        },
    )
    assert status == 201, task
    for to in (f"local://{outside}/far.manifest", f"simplecache::file://{outside}/far.manifest"):
        status, body = await api("POST", f"{W}/tasks/far/export", {"format": "itag", "to": to})
        assert status == 400 and body["error"]["field"] == "to", body
    assert sorted(p.name for p in outside.iterdir()) == ["private.jpg"]
