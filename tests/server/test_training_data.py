"""Data sources of a job (--data_sources): bad names are refused with the field, a task's final answers
reach every rank (accept > check > label; unanswered items left out), in the task's label order."""

from __future__ import annotations

import json

READER = r"""
import json, sys
import pai_lab.training as pai
from pai_lab.training.reader import lines
info = pai.source_info()
seen = {}
for line in lines():
    answers = {k: v["results"][0]["data"] for k, v in line.items() if k.startswith("label-")}
    seen[line["data"]["source"]] = answers
print("SEEN " + json.dumps({"names": pai.class_names(), "kind": info["kind"], "type": info["data_type"],
                            "answers": seen}), flush=True)
"""


async def test_bad_data_sources_are_refused_naming_the_field(api, members, rank_script):
    await members("default")
    status, _ = await api("POST", "/workspaces/default/datasets", {"name": "reviews", "source": "sample://reviews"})
    assert status == 201
    status, _ = await api(
        "POST",
        "/workspaces/default/labeling/tasks",
        {
            "name": "unlabelled",
            "template": "text-classification",
            "dataset": "reviews",
            "labels": ["positive", "negative"],
        },
    )
    assert status == 201
    base = {"name": "bad", "command": f"python {rank_script}", "workers": 1}
    cases = [
        ("task:nope", "no labeling task"),
        ("nope", "not a registered dataset"),
        ("reviews:9", "no version 9"),
        ("reviews:x", "NAME:VERSION"),
        ("task:unlabelled", "no answered items"),
        ("task:", "names no task"),
    ]
    for source, words in cases:
        status, answer = await api("POST", "/workspaces/default/jobs", {**base, "data_sources": [source]})
        assert status == 400, (source, answer)
        assert answer["error"]["field"] == "data_sources" and words in answer["error"]["message"], answer
    assert await api("GET", "/workspaces/default/jobs") == (200, [])


def test_a_tasks_final_answers_reach_the_ranks_in_the_tasks_label_order(live_server, unique_name, tmp_path):
    ws = live_server.client().workspace("default")
    task = ws.labeling.create_task(
        unique_name("reviews"),
        "text-classification",
        lines=[{"data": {"source": f"review {i}"}} for i in range(6)],
        labels=["pos", "neg"],
        flow="label-check",
        check_ratio=1.0,
    )
    package = task.claim()
    for seq in range(5):
        task.submit(seq, "pos")
    task.submit(5, skip="not a review")
    task.submit_package(package)
    checked = task.claim("check")
    task.submit(0, "neg", stage="check")  # the checker corrects one answer: the check stage wins
    task.passes(checked)
    script = tmp_path / "read.py"
    script.write_text(READER)

    job = ws.jobs.submit(name="reads", command=f"python {script}", workers=2, data_sources=[task])  # the object
    assert job.spec.data_sources == [f"task:{task.name}"]
    job.wait(timeout=120, poll=0.3)
    assert job.state == "Succeeded", job.reason
    for rank in (0, 1):
        seen = json.loads(job.logs(rank).split("SEEN ", 1)[1].splitlines()[0])
        assert seen["names"] == ["pos", "neg"]  # the task's order, not sorted
        assert (seen["kind"], seen["type"]) == ("task", "text")
        finals = {
            source: (answers.get(f"label-{task.id}-check") or answers[f"label-{task.id}"])
            for source, answers in seen["answers"].items()
        }
        assert finals == {"review 0": "neg", **{f"review {i}": "pos" for i in range(1, 5)}}


def test_a_detection_tasks_boxes_are_a_detection_source_in_the_tasks_label_order(live_server, unique_name, tmp_path):
    ws = live_server.client().workspace("default")
    task = ws.labeling.create_task(
        unique_name("boxes"),
        "object-detection",
        labels=["dog", "cat"],
        lines=[{"data": {"source": f"img/{i}.jpg"}} for i in range(3)],
    )
    package = task.claim()
    task.submit(0, {"width": 100, "height": 50, "shapes": [{"box": [10, 5, 60, 45], "label": "cat"}]})
    task.submit(1, {"width": 100, "height": 50, "shapes": [{"box": [0, 0, 20, 20], "label": "dog"}]})
    task.submit(2, skip="blurred")
    task.submit_package(package)
    script = tmp_path / "read.py"
    script.write_text(READER)

    job = ws.jobs.submit(name="boxes", command=f"python {script}", workers=1, data_sources=[f"task:{task.id}"])
    job.wait(timeout=120, poll=0.3)
    assert job.state == "Succeeded", job.reason
    seen = json.loads(job.logs(0).split("SEEN ", 1)[1].splitlines()[0])
    assert (seen["kind"], seen["type"], seen["names"]) == ("task", "detection", ["dog", "cat"])
    assert sorted(seen["answers"]) == ["img/0.jpg", "img/1.jpg"]  # by id as well as by name
