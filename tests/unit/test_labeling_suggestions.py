"""Suggestions that pay: scores kept with the suggestion, the untouched packages reordered most
uncertain first, answers that say whether they kept the suggestion (stats, Label Studio export),
and a served model's replies read into suggestions."""

from __future__ import annotations

import json
import math
import random

import numpy as np
import pytest

from pai_lab.errors import BadInput
from pai_lab.labeling import schemas as sc
from pai_lab.labeling import service as sv
from pai_lab.labeling import suggestions, transfer

W = "default"
CLASSES = ["cat", "dog", "fox"]


def _do(store, fn, *args, **kw):
    with store.transaction() as s:
        return fn(s, *args, **kw)


def _task(store, name="pets", n=40, size=10, **kw):
    body = sc.TaskCreate(
        name=name,
        template="image-classification",
        labels=CLASSES,
        package_size=size,
        lines=[{"data": {"source": f"img/{i}.jpg"}} for i in range(n)],
        **kw,
    )
    return _do(store, sv.create_task, "owner", W, body)


def _scored(store, task_id, seqs, seed=7):
    """Attach a suggestion with random class probabilities to each item of ``seqs``; returns them."""
    rng = random.Random(seed)
    probs = {}
    for seq in seqs:
        raw = [rng.random() ** 3 for _ in CLASSES]
        probs[seq] = dict(zip(CLASSES, (p / sum(raw) for p in raw)))
    items = [
        sc.Prelabel(item=seq, answer=max(p, key=p.get), score=max(p.values()), scores=p) for seq, p in probs.items()
    ]
    _do(store, sv.attach_prelabels, "owner", W, task_id, sc.PrelabelBatch(source="model:toy", items=items))
    return probs


def _package_seqs(store, task_id, number):
    return {i.seq for i in _do(store, sv.package_items, "owner", W, task_id, number)}


def test_a_suggestion_keeps_its_score_and_class_probabilities(label_platform):
    store = label_platform.store
    task = _task(store, n=3, size=3)
    _do(
        store,
        sv.attach_prelabels,
        "owner",
        W,
        task.id,
        sc.PrelabelBatch(
            source="service:pets",
            items=[
                sc.Prelabel(item=0, answer="dog", score=0.8, scores={"cat": 0.1, "dog": 0.8, "fox": 0.1}),
                sc.Prelabel(item=1, answer="cat"),
            ],
        ),
    )
    first, second, third = _do(store, sv.list_items, "owner", W, task.id)
    assert (first.prelabel[0]["data"], first.prelabel_score, first.prelabel_scores) == (
        "dog",
        0.8,
        {"cat": 0.1, "dog": 0.8, "fox": 0.1},
    )
    assert (second.prelabel_score, second.prelabel_scores) == (None, None)
    assert third.prelabel is None
    with pytest.raises(BadInput, match=r"items\[0\]\.scores\['cat'\] must be a probability") as bad:
        _do(
            store,
            sv.attach_prelabels,
            "owner",
            W,
            task.id,
            sc.PrelabelBatch(source="m", items=[sc.Prelabel(item=2, answer="cat", scores={"cat": 1.5})]),
        )
    assert bad.value.field == "scores"


@pytest.mark.parametrize("by", ["least_confidence", "margin", "entropy"])
def test_ordering_puts_the_most_uncertain_items_in_the_next_package(label_platform, by):
    store = label_platform.store
    task = _task(store, n=40, size=10)
    probs = _scored(store, task.id, range(30))  # items 30-39 have no suggestion

    def uncertainty(p):
        ranked = sorted(p.values(), reverse=True)
        if by == "least_confidence":
            return 1 - ranked[0]
        if by == "margin":
            return ranked[1] - ranked[0]
        return -sum(x * math.log(x) for x in ranked)

    by_doubt = sorted(probs, key=lambda seq: uncertainty(probs[seq]), reverse=True)
    done = _do(store, sv.order, "owner", W, task.id, by)
    assert (done.packages, done.items, done.scored) == (4, 40, 30)
    pkg = _do(store, sv.claim, "owner", W, task.id, "label")
    assert pkg.number == 1
    assert _package_seqs(store, task.id, 1) == set(by_doubt[:10])
    assert _package_seqs(store, task.id, 2) == set(by_doubt[10:20])
    assert _package_seqs(store, task.id, 4) == set(range(30, 40))  # unscored items last
    assert [p.size for p in _do(store, sv.list_packages, "owner", W, task.id)] == [10, 10, 10, 10]


def test_ordering_leaves_claimed_packages_alone_and_falls_back_to_the_one_score(label_platform):
    store = label_platform.store
    task = _task(store, n=30, size=10)
    held = _do(store, sv.claim, "owner", W, task.id, "label")
    assert _package_seqs(store, task.id, held.number) == set(range(10))
    # only a top score: the least sure suggestions are those with the lowest score
    scores = {seq: round(0.35 + 0.03 * ((seq * 7) % 20), 2) for seq in range(30)}
    _do(
        store,
        sv.attach_prelabels,
        "owner",
        W,
        task.id,
        sc.PrelabelBatch(
            source="m", items=[sc.Prelabel(item=seq, answer="cat", score=score) for seq, score in scores.items()]
        ),
    )
    done = _do(store, sv.order, "owner", W, task.id, "least_confidence")
    assert (done.packages, done.items) == (2, 20)
    assert _package_seqs(store, task.id, 1) == set(range(10))
    untouched = sorted(range(10, 30), key=lambda seq: (scores[seq], seq))
    assert _package_seqs(store, task.id, 2) == set(untouched[:10])

    done = _do(store, sv.order, "owner", W, task.id, "random", seed=3)
    assert _package_seqs(store, task.id, 2) | _package_seqs(store, task.id, 3) == set(range(10, 30))
    with pytest.raises(BadInput, match="unknown order 'confidence'") as bad:
        _do(store, sv.order, "owner", W, task.id, "confidence")
    assert bad.value.field == "by"


def _answer(store, task_id, seq, answer=None, results=None):
    _do(store, sv.submit_answer, "owner", W, task_id, sc.AnswerSubmit(item=seq, answer=answer, results=results))


def test_answers_say_whether_they_kept_the_suggestion(label_platform, tmp_path):
    store = label_platform.store
    task = _task(store, n=3, size=3)
    _do(
        store,
        sv.attach_prelabels,
        "owner",
        W,
        task.id,
        sc.PrelabelBatch(
            source="service:pets",
            items=[sc.Prelabel(item=0, answer="dog", score=0.9), sc.Prelabel(item=1, answer="dog", score=0.6)],
        ),
    )
    _do(store, sv.claim, "owner", W, task.id, "label")
    _answer(store, task.id, 0, "dog")  # kept
    _answer(store, task.id, 1, "fox")  # changed
    _answer(store, task.id, 2, "cat")  # there was none
    _do(store, sv.submit_package, "owner", W, task.id, 1)
    items = _do(store, sv.list_items, "owner", W, task.id)
    assert [i.origins for i in items] == [{"label": "prediction"}, {"label": "prediction-changed"}, {"label": "manual"}]
    stats = _do(store, sv.stats, "owner", W, task.id)
    assert (stats.suggested, stats.suggestions_accepted, stats.suggestions_changed) == (2, 1, 1)

    with store.transaction() as s:
        ctx, module, _ = transfer.context(s, store.engine, "owner", W, task.id, "label-studio")
    exported = json.loads("".join(module.export(ctx)))
    assert [[r["origin"] for r in t["annotations"][0]["result"]] for t in exported] == [
        ["prediction"],
        ["prediction-changed"],
        ["manual"],
    ]
    assert [t["predictions"][0]["score"] for t in exported[:2]] == [0.9, 0.6]
    with store.transaction() as s:
        ctx, module, _ = transfer.context(s, store.engine, "owner", W, task.id, "itag")
    manifest = "".join(module.export(ctx))
    assert "origin" not in manifest and "prediction" not in manifest  # iTAG's own format, byte for byte
    with store.transaction() as s:
        ctx, module, _ = transfer.context(s, store.engine, "owner", W, task.id, "itag", {"origins": True})
    marked = [json.loads(line) for line in "".join(module.export(ctx)).splitlines()]
    assert [line[f"label-{task.id}"]["origin"] for line in marked] == ["prediction", "prediction-changed", "manual"]
    assert [line[f"label-{task.id}"]["results"] for line in marked] == [
        json.loads(line)[f"label-{task.id}"]["results"] for line in manifest.splitlines()
    ]
    text = "\n".join(json.dumps(line, ensure_ascii=False) for line in marked)
    back = _do(store, transfer.import_task, "owner", W, sc.ImportRequest(name="back", content=text, keep_id=False))
    assert [i.label for i in _do(store, sv.list_items, "owner", W, back.id)] == [i.label for i in items]


def test_kept_boxes_count_as_kept_whatever_ids_the_labeler_gives_them(label_platform):
    store = label_platform.store
    body = sc.TaskCreate(
        name="boxes",
        template="object-detection",
        labels=["cat"],
        lines=[{"data": {"source": "a.jpg"}}, {"data": {"source": "b.jpg"}}],
    )
    task = _do(store, sv.create_task, "owner", W, body)
    box = {"width": 100, "height": 80, "shapes": [{"box": [10.123, 5.5, 60.004, 40], "label": "cat"}]}
    _do(
        store,
        sv.attach_prelabels,
        "owner",
        W,
        task.id,
        sc.PrelabelBatch(
            source="m", items=[sc.Prelabel(item=0, answer=box, score=0.7), sc.Prelabel(item=1, answer=box, score=0.7)]
        ),
    )
    _do(store, sv.claim, "owner", W, task.id, "label")
    # what the labeler sends back: its own shape id, points to two decimals
    kept = {"width": 100, "height": 80, "shapes": [{"id": "mine", "box": [10.12, 5.5, 60.0, 40], "label": "cat"}]}
    moved = {"width": 100, "height": 80, "shapes": [{"box": [12, 5.5, 60, 40], "label": "cat"}]}
    _answer(store, task.id, 0, kept)
    _answer(store, task.id, 1, moved)
    assert [i.origins.get("label") for i in _do(store, sv.list_items, "owner", W, task.id)] == [
        "prediction",
        "prediction-changed",
    ]


def test_a_classifier_reply_becomes_a_label_with_its_score_and_probabilities():
    reply = {
        "label": np.array([b"dog", b"cat"]),
        "score": np.array([0.7, 0.5]),
        "probabilities": np.array([[0.2, 0.7, 0.1], [0.5, 0.3, 0.2]]),
    }
    made = suggestions.classification(reply, CLASSES, CLASSES)
    assert made[0] == {"answer": "dog", "score": 0.7, "scores": {"cat": 0.2, "dog": 0.7, "fox": 0.1}}
    assert made[1]["answer"] == "cat" and made[1]["score"] == 0.5
    # probabilities alone: the arg-max in the class order is the label
    alone = suggestions.classification(np.array([[0.1, 0.1, 0.8]]), None, CLASSES)
    assert alone == [{"answer": "fox", "score": 0.8, "scores": {"cat": 0.1, "dog": 0.1, "fox": 0.8}}]
    # a label from the model but no class list: probabilities in an unknown order are not kept
    unknown = suggestions.classification(
        {"label": np.array([b"dog"]), "score": np.array([0.7]), "probabilities": np.array([[0.7, 0.2, 0.1]])},
        None,
        CLASSES,
    )
    assert unknown == [{"answer": "dog", "score": 0.7, "scores": None}]
    with pytest.raises(BadInput, match="3 class names"):
        suggestions.classification(np.array([[0.5, 0.5]]), None, CLASSES)


def test_a_detector_reply_becomes_boxes_in_pixels_above_the_threshold():
    reply = {
        "detection_boxes": np.array(
            [[[0.1, 0.2, 0.5, 0.6], [0.0, 0.0, 1.0, 1.0]], [[0.2, 0.2, 0.4, 0.4], [0.5, 0.5, 0.9, 0.9]]]
        ),
        "detection_scores": np.array([[0.9, 0.3], [0.2, 0.1]]),
        "detection_classes": np.array([[1, 0], [2, 2]]),
    }
    made = suggestions.detection(reply, [(200, 100), (64, 64)], CLASSES, CLASSES, threshold=0.5)
    first = made[0]["answer"]
    assert (first["width"], first["height"]) == (200, 100)
    assert [(s["label"], s["box"]) for s in first["shapes"]] == [("dog", [40.0, 10.0, 120.0, 50.0])]
    assert made[0]["score"] == 0.9
    assert made[1]["answer"]["shapes"] == [] and made[1]["score"] == pytest.approx(0.8)


def test_uncertainty_from_scores_or_the_one_score():
    assert suggestions.uncertainty("least_confidence", None, {"a": 0.6, "b": 0.4}) == pytest.approx(0.4)
    assert suggestions.uncertainty("margin", 0.9, None) == pytest.approx(-0.8)
    assert suggestions.uncertainty("entropy", None, {"a": 0.5, "b": 0.5}) == pytest.approx(math.log(2))
    assert suggestions.uncertainty("entropy", None, None) is None
