"""Simple answers are the labeler page's whole view of results: the server builds iTAG results from
them (Checker.build) and gives stored results back as them (Checker.simple), for every template."""

from __future__ import annotations

import pytest

from pai_lab.labeling import flow
from pai_lab.labeling.answers import Checker
from pai_lab.labeling.templates import builtin

TEXT = "Jack Ma founded Alibaba in Hangzhou."
LABELS = ["PER", "ORG", "cat", "dog"]
# what the page sends for one item of each template
ANSWERS = {
    "image-classification": ({"source": "a.png"}, {"单选": "cat"}),
    "ner": (
        {"source": TEXT},
        {
            "NER": {
                "spans": [{"start": 0, "end": 6, "label": "PER"}, {"start": 16, "end": 22, "label": "ORG"}],
                "empty": False,
            }
        },
    ),
    "relation": (
        {"source": TEXT},
        {
            "entities": {
                "spans": [{"start": 0, "end": 6, "label": "PER"}, {"start": 16, "end": 22, "label": "ORG"}],
                "empty": False,
            },
            "relations": [
                {
                    "from": {"start": 0, "end": 6, "x": 3, "y": 4},
                    "to": {"start": 16, "end": 22, "x": 0, "y": 0},
                    "label": "founded",
                }
            ],
        },
    ),
    "object-detection": (
        {"source": "a.png"},
        {
            "目标检测标签配置": {
                "width": 640,
                "height": 480,
                "shapes": [
                    {"id": "b1", "points": [[10, 20], [110, 20], [110, 90], [10, 90]], "label": "cat"},
                    {"id": "b2", "points": [[5, 5], [50, 8], [20, 40]], "label": "dog"},
                ],
            }
        },
    ),
    "ocr": (
        {"source": "a.png"},
        {
            "OCR标签配置": {
                "width": 640,
                "height": 480,
                "shapes": [
                    {"id": "t1", "points": [[10, 20], [110, 20], [110, 90], [10, 90]], "label": None, "text": "EXIT"}
                ],
            }
        },
    ),
    "audio-segmentation": (
        {"source": "a.wav"},
        {
            "segments": {
                "duration": 3.5,
                "empty": False,
                "segments": [{"id": "wavesurfer_abc", "start": 0.5, "end": 1.25, "label": "cat", "text": "meow"}],
            }
        },
    ),
    "asr": ({"source": "a.wav"}, {"音频识别结果": "hello there", "多选": ["cat"]}),
}


@pytest.mark.parametrize("template", sorted(ANSWERS))
def test_stored_results_come_back_as_the_simple_answer_that_built_them(template):
    data, answer = ANSWERS[template]
    checker = Checker(builtin(template, relation_labels=["founded"]), LABELS)
    results = checker.normalize(checker.build(answer, data), data, strict=True)
    simple = checker.simple(results)
    assert checker.normalize(checker.build(simple, data), data, strict=True) == results
    assert simple == {title: checker.simple(results)[title] for title in answer}


def test_no_results_is_no_answer():
    checker = Checker(builtin("image-classification"), LABELS)
    assert checker.simple(None) is None


def test_the_stage_table_says_which_items_a_stage_shows_and_when_each_is_done():
    items = [
        {"seq": 0, "label": [1], "check": None, "verify": None, "skipped": None, "sampled": True},
        {"seq": 1, "label": None, "check": None, "verify": None, "skipped": "blurry", "sampled": True},
        {"seq": 2, "label": [2], "check": None, "verify": None, "skipped": None, "sampled": False},
    ]
    assert [i["seq"] for i in flow.stage_items("check", items)] == [0]
    assert [i["seq"] for i in flow.stage_items("accept", items)] == [0, 2]
    assert [flow.item_done("label", i) for i in items] == [True, True, True]
    assert [flow.item_done("check", i) for i in items] == [False, True, True]
    assert flow.shown_answer("accept", items[0]) == [1]
