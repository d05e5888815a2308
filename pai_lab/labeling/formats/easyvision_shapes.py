"""The seven answer shapes of the EasyVision CSV, to and from a labeling task's results.

==================  =================================================  ==========================
shape               answer column (融合答案)                            task template
==================  =================================================  ==========================
classification      ``{"option": "cat"}``                              image-classification
multi-label         ``{"option": ["cat", "dog"]}``                     image-classification, multi
detection           ``[{"text": "{\\"class*\\": \\"cat\\"}", "coord": [..]}]``  object-detection
segmentation        ``{"ossUrl": "<mask PNG>"}``                       object-detection (polygons)
text-recognition    ``{"text": "..."}``                                text-recognition (custom)
text-detection      ``[[{"text": "{\\"direction\\", \\"class*\\"}", "coord"}], {"option"}]``  ocr
text-end2end        the same, each line's text JSON also holding ``text``  ocr
==================  =================================================  ==========================

``coord`` lists every vertex as ``x1, y1, x2, y2, ...`` strings with two decimals (a rectangle
has 8). Text lines carry their ``direction`` and the image its orientation (``option``); both
are one of :data:`ORIENTATIONS`, and when an imported file gives other than upright they are
kept in the item's data under ``easyvision`` so that an export writes them back.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any

from pai_lab.errors import BadInput
from pai_lab.labeling.formats import shape_labels, zip_results
from pai_lab.labeling.templates import OCR_TEXT, QuestionComponent, TemplateSpec

SHAPES = (
    "classification",
    "multi-label",
    "detection",
    "segmentation",
    "text-recognition",
    "text-detection",
    "text-end2end",
)
UPRIGHT = "底部朝下"
ORIENTATIONS = ("底部朝下", "底部朝上", "底部朝左", "底部朝右")
TEXT_RECOGNITION = "text-recognition"
TEXT_RECOGNITION_SPEC = {
    "name": TEXT_RECOGNITION,
    "description": "EasyVision text recognition: the text of a one-line image",
    "contents": [{"type": "image", "key": "source", "id": "1"}],
    "questions": [{"type": "text", "id": "2", "title": OCR_TEXT}],
}


def shape_of(answer: Any) -> str | None:
    """The shape an answer has, or None when it has none of the seven."""
    if isinstance(answer, dict):
        if "option" in answer:
            return "multi-label" if isinstance(answer["option"], list) else "classification"
        if "ossUrl" in answer:
            return "segmentation"
        if "text" in answer:
            return "text-recognition"
        return None
    if isinstance(answer, list):
        if len(answer) == 2 and isinstance(answer[0], list) and isinstance(answer[1], dict):
            inner = [_inner(o, "") for o in answer[0] if isinstance(o, dict)]
            return "text-end2end" if any("text" in i for i in inner) else "text-detection"
        if all(isinstance(o, dict) and "coord" in o for o in answer):
            return "detection"
    return None


def _inner(obj: dict, where: str) -> dict:
    text = obj.get("text", "{}")
    try:
        inner = json.loads(text) if isinstance(text, str) else text
    except ValueError:
        raise BadInput(f'{where}: text {text!r} must be JSON text such as {{"class*": "cat"}}', "content") from None
    if not isinstance(inner, dict):
        raise BadInput(f'{where}: text must hold a JSON object such as {{"class*": "cat"}}', "content")
    return inner


def points_of(obj: dict, where: str) -> list[list[float | int]]:
    coord = obj.get("coord")
    if not isinstance(coord, list) or len(coord) < 6 or len(coord) % 2:
        raise BadInput(f"{where}: coord must list x1, y1, x2, y2, ... of at least 3 vertices (a box has 8)", "content")
    try:
        values = [float(c) for c in coord]
    except (TypeError, ValueError):
        raise BadInput(f"{where}: coord values must be numbers (written as strings)", "content") from None
    nums = [int(v) if v.is_integer() else v for v in values]
    return [[nums[i], nums[i + 1]] for i in range(0, len(nums), 2)]


def objects_of(shape: str, answer: Any, where: str) -> tuple[list[dict], str]:
    """(objects as {points, class, text, direction}, image orientation) of a box-shaped answer."""
    lines, orientation = (answer, UPRIGHT) if shape == "detection" else (answer[0], answer[1].get("option", UPRIGHT))
    out = []
    for k, obj in enumerate(lines):
        w = f"{where}[{k}]"
        if not isinstance(obj, dict):
            raise BadInput(f'{w} must be {{"text", "coord"}}', "content")
        inner = _inner(obj, w)
        out.append(
            {
                "points": points_of(obj, w),
                "class": inner.get("class*", ""),
                "text": inner.get("text", ""),
                "direction": inner.get("direction", UPRIGHT),
            }
        )
    return out, orientation


# ---------------------------------------------------------------- task results -> answer


def question_for(spec: TemplateSpec, shape: str) -> QuestionComponent | None:
    want = {"classification": ("single", "multi"), "multi-label": ("single", "multi"), "text-recognition": ("text",)}
    for q in spec.questions:
        if q.type in want.get(shape, ("boxes",)):
            return q
    return None


def answer_of(shape: str, spec: TemplateSpec, results: list, data: dict) -> Any:
    """The answer column for one item (None when it has no answer to that question). Segmentation
    answers are ``{"polygons": [(points, label)], "width", "height"}`` for the caller to draw."""
    for q, el in zip_results(spec, results):
        if q is not question_for(spec, shape):
            continue
        if shape in ("classification", "multi-label"):
            value = el["data"]
            if shape == "multi-label" and not isinstance(value, list):
                value = [value]
            return {"option": value}
        if shape == "text-recognition":
            return {"text": el["data"]}
        if shape == "segmentation":
            polygons = [(s["value"], (shape_labels(q, s["labels"]) or [""])[0]) for s in el["data"]]
            return {"polygons": polygons, "width": el["width"], "height": el["height"]}
        extra = data["easyvision"] if isinstance(data.get("easyvision"), dict) else {}
        directions = extra.get("directions") or []
        objects = []
        for k, s in enumerate(el["data"]):
            labels = shape_labels(q, s["labels"])
            coord = [f"{c:.2f}" for p in s["value"] for c in p]
            if shape == "detection":
                inner = {"class*": labels[0] if labels else ""}
            else:
                inner = {}
                if shape == "text-end2end":
                    inner["text"] = s["labels"].get(q.text_title, "") if q.text_title else ""
                inner["direction"] = directions[k] if k < len(directions) else UPRIGHT
                inner["class*"] = labels[0] if labels else ""
            objects.append({"text": json.dumps(inner, ensure_ascii=False), "coord": coord})
        if shape == "detection":
            return objects
        return [objects, {"option": extra.get("orientation", UPRIGHT)}]
    return None


# ---------------------------------------------------------------- answer -> task results


def results_of(
    shape: str,
    q: QuestionComponent,
    answer: Any,
    data: dict,
    where: str,
    size: Callable[[], tuple[int, int] | None],
    mask_shapes: Callable[[str], tuple[list[tuple[list, str]], int, int]] | None = None,
) -> list:
    """The task results holding one answer. ``size`` gives the image's size (None when it cannot be
    read: the extent of the boxes is taken); ``mask_shapes`` reads a mask into labelled outlines."""
    if shape in ("classification", "multi-label"):
        value = answer["option"]
        if q.type == "multi" and not isinstance(value, list):
            value = [value]
        if q.type == "single" and isinstance(value, list):
            if len(value) != 1:
                raise BadInput(f"{where}: {len(value)} options for a single-choice template; give multi=true", "multi")
            value = value[0]
        kind = "survey/multivalue" if q.type == "multi" else "survey/value"
        return [{"questionId": q.id, "data": value, "markTitle": q.title, "type": kind}]
    if shape == "text-recognition":
        text = answer["text"]
        if not isinstance(text, str):
            raise BadInput(f'{where}: {{"text": ...}} must hold the text', "content")
        return [{"questionId": q.id, "data": text, "markTitle": q.title, "type": "survey/value"}]
    if shape == "segmentation":
        if mask_shapes is None or not isinstance(answer["ossUrl"], str):
            raise BadInput(f"{where}: ossUrl must name the mask PNG", "content")
        outlines, width, height = mask_shapes(answer["ossUrl"])
        shapes = [_shape(q, points, name, "", f"{where}-{k}") for k, (points, name) in enumerate(outlines)]
        return [_image(q, shapes, width, height)]
    objects, orientation = objects_of(shape, answer, where)
    if orientation not in ORIENTATIONS or any(o["direction"] not in ORIENTATIONS for o in objects):
        raise BadInput(f"{where}: orientations are {', '.join(ORIENTATIONS)}", "content")
    if shape != "detection" and (orientation != UPRIGHT or any(o["direction"] != UPRIGHT for o in objects)):
        data["easyvision"] = {"orientation": orientation, "directions": [o["direction"] for o in objects]}
    shapes = [_shape(q, o["points"], o["class"], o["text"], f"{where}-{k}") for k, o in enumerate(objects)]
    got = size()
    if got is None:
        xs = [p[0] for o in objects for p in o["points"]] or [1]
        ys = [p[1] for o in objects for p in o["points"]] or [1]
        got = (max(1, math.ceil(max(xs))), max(1, math.ceil(max(ys))))
    return [_image(q, shapes, *got)]


def _shape(q: QuestionComponent, points: list, name: str, text: str, shape_id: str) -> dict:
    labels: dict = {}
    if q.text_title:
        labels[q.text_title] = text
    if name or not q.text_title:
        labels[q.result_key] = [name] if q.multi else name
    return {"id": f"ev-{shape_id}", "type": "image/polygon", "value": points, "labels": labels}


def _image(q: QuestionComponent, shapes: list, width: int, height: int) -> dict:
    return {
        "questionId": q.id,
        "data": shapes,
        "rotation": 0,
        "markTitle": q.title,
        "width": width,
        "type": "image",
        "height": height,
    }
