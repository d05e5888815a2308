"""Simple answers and iTAG results, both ways: :func:`build` makes results from a simple answer keyed by
question title (or id), :func:`simple` reads stored results back as one (what the labeler page edits, so it
never reads or writes the iTAG shape itself). Results are checked afterwards by
:meth:`pai_lab.labeling.answers.Checker.normalize`; :func:`matches` (which element answers which question) and
:func:`source_text` serve both sides.
"""

from __future__ import annotations

import uuid
from typing import Any

from pai_lab.errors import BadInput
from pai_lab.labeling.templates import QuestionComponent


def matches(q: QuestionComponent, el: Any) -> bool:
    """Whether a results element has the shape that answers question ``q``."""
    if q.type == "relations":
        return isinstance(el, list)
    if not isinstance(el, dict):
        return False
    if q.type in ("single", "multi", "text", "boxes"):
        return str(el.get("questionId")) == q.id
    if q.type == "spans":
        return "objects" in el and "duration" not in el
    return "objects" in el and "duration" in el  # segments


def source_text(q: QuestionComponent, data: Any) -> str | None:
    """The item's text a spans question marks (its ``bind`` field, else ``source``), if it is text."""
    value = data.get(q.bind or "source") if isinstance(data, dict) else None
    return value if isinstance(value, str) else None


# ------------------------------------------------------------------ simple answers


def build(questions: list[QuestionComponent], answer: Any, data: dict) -> list:
    """Results from a simple answer keyed by question title or id (see docs/labeling.md)."""
    if not isinstance(answer, dict) or not any(k in answer for q in questions for k in (q.title, q.id) if k):
        if len(questions) != 1:
            titles = ", ".join(repr(q.title) for q in questions)
            raise BadInput(f"answer must be an object keyed by question title ({titles})", "answer")
        answer = {questions[0].title: answer}
    known = {k for q in questions for k in (q.title, q.id) if k}
    for key in answer:
        if key not in known:
            raise BadInput(f"answer: unknown question {key!r}; questions are {[q.title for q in questions]}", "answer")
    results = []
    entities: list[dict] = []
    for q in questions:
        value = answer.get(q.title, answer.get(q.id) if q.id else None)
        if value is None:
            if q.required:
                raise BadInput(f"answer has nothing for question {q.title!r}", "answer")
            continue
        el = _build_one(q, value, data, entities)
        if q.type == "spans":
            entities = el["objects"]
        results.append(el)
    return results


def _build_one(q, value, data, entities):
    if q.type in ("single", "text"):
        return {"questionId": q.id, "data": value, "markTitle": q.title, "type": "survey/value"}
    if q.type == "multi":
        return {"questionId": q.id, "data": value, "markTitle": q.title, "type": "survey/multivalue"}
    if q.type == "boxes":
        if not isinstance(value, dict) or "width" not in value or "height" not in value:
            raise BadInput(
                f'answer for {q.title!r} must be {{"width", "height", "shapes": [...]}} (the image\'s size in pixels)',
                "answer",
            )
        shapes = []
        given: Any = value.get("shapes", value.get("boxes", []))  # JSON from the page
        for s in given:
            if not isinstance(s, dict):
                raise BadInput(f"each shape of {q.title!r} must be an object with box or points", "answer")
            points: Any
            if "box" in s:
                box = s["box"]
                if not isinstance(box, list) or len(box) != 4:
                    raise BadInput("box must be [x1, y1, x2, y2]", "answer")
                x1, y1, x2, y2 = box
                points = [[x1, y1], [x2, y1], [x2, y2], [x1, y2]]
            else:
                points = s.get("points")
            labels = {}
            if q.text_title and "text" in s:
                labels[q.text_title] = s["text"]
            if s.get("label") is not None:
                labels[q.result_key] = s["label"]
            shapes.append(
                {"id": s.get("id") or str(uuid.uuid4()), "type": "image/polygon", "value": points, "labels": labels}
            )
        return {
            "questionId": q.id,
            "data": shapes,
            "rotation": value.get("rotation", 0),
            "markTitle": q.title,
            "width": value["width"],
            "type": "image",
            "height": value["height"],
        }
    if q.type == "spans":
        spans = value.get("spans", []) if isinstance(value, dict) else value
        text = source_text(q, data) or ""
        objects = []
        for s in spans:
            if not isinstance(s, dict):
                raise BadInput('each span must be {"start", "end" (inclusive), "label"}', "answer")
            start, end = s.get("start"), s.get("end")
            objects.append(
                {
                    "result": {q.result_key: s.get("label")},
                    "color": None,
                    "id": None,
                    "text": s.get("text")
                    if "text" in s
                    else (text[start : end + 1] if isinstance(start, int) and isinstance(end, int) else None),
                    "start": start,
                    "end": end,
                }
            )
        return {"objects": objects, "empty": bool(isinstance(value, dict) and value.get("empty"))}
    if q.type == "relations":
        out = []
        for r in value:
            ends = []
            for side in ("from", "to"):
                p = r.get(side)
                if isinstance(p, (list, tuple)) and len(p) == 2:
                    p = {"start": p[0], "end": p[1]}
                if not isinstance(p, dict):
                    raise BadInput(f"relation {side} must be [start, end] of a marked entity", "answer")
                marked = next(
                    (e["text"] for e in entities if e["start"] == p.get("start") and e["end"] == p.get("end")),
                    p.get("text"),
                )
                ends.append(
                    {
                        "x": p.get("x", 0),
                        "y": p.get("y", 0),
                        "start": p.get("start"),
                        "end": p.get("end"),
                        "text": marked,
                    }
                )
            out.append({"result": {q.result_key: r.get("label")}, "from": ends[0], "to": ends[1]})
        return out
    # segments
    segs = value.get("segments", []) if isinstance(value, dict) else value
    objects = []
    for s in segs:
        result = {}
        if q.text_title and "text" in s:
            result[q.text_title] = s["text"]
        if s.get("label") is not None:
            result[q.result_key] = s["label"]
        objects.append(
            {"result": result, "color": None, "id": s.get("id"), "start": s.get("start"), "end": s.get("end")}
        )
    duration = value.get("duration", 0) if isinstance(value, dict) else 0
    return {"duration": duration, "objects": objects, "empty": bool(isinstance(value, dict) and value.get("empty"))}


# ------------------------------------------------------------------ results as simple answers


def simple(questions: list[QuestionComponent], results: Any) -> dict | None:
    """Stored results as the simple answer build() takes back, keyed by question title: what the
    labeler page edits, so it never reads or writes the iTAG shape itself."""
    if not isinstance(results, list):
        return None
    out: dict = {}
    pos = 0
    for q in questions:
        el = results[pos] if pos < len(results) else None
        if el is None or not matches(q, el):
            continue
        pos += 1
        out[q.title] = _simple_one(q, el)
    return out


def _simple_one(q, el):
    key = q.result_key

    def extra(found: dict) -> dict:
        return {"text": found.get(q.text_title, "")} if q.text_title else {}

    if q.type in ("single", "text"):
        return el.get("data")
    if q.type == "multi":
        return list(el.get("data") or [])
    if q.type == "boxes":
        return {
            "width": el.get("width"),
            "height": el.get("height"),
            "rotation": el.get("rotation", 0),
            "shapes": [
                {
                    "id": sh.get("id"),
                    "points": sh.get("value"),
                    "label": (sh.get("labels") or {}).get(key),
                    **extra(sh.get("labels") or {}),
                }
                for sh in el.get("data") or []
            ],
        }
    if q.type == "spans":
        return {
            "spans": [
                {"start": o.get("start"), "end": o.get("end"), "label": (o.get("result") or {}).get(key)}
                for o in el.get("objects") or []
            ],
            "empty": bool(el.get("empty")),
        }
    if q.type == "relations":
        ends = ("start", "end", "x", "y")
        return [
            {
                "from": {k: (r.get("from") or {}).get(k) for k in ends},
                "to": {k: (r.get("to") or {}).get(k) for k in ends},
                "label": (r.get("result") or {}).get(key),
            }
            for r in el
        ]
    return {
        "duration": el.get("duration", 0),
        "empty": bool(el.get("empty")),
        "segments": [
            {
                "id": o.get("id"),
                "start": o.get("start"),
                "end": o.get("end"),
                "label": (o.get("result") or {}).get(key),
                **extra(o.get("result") or {}),
            }
            for o in el.get("objects") or []
        ],
    }
