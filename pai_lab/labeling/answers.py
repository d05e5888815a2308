"""Answers: checking an iTAG ``results`` list against a template, one checker per question type
(survey, boxes, spans, relations, segments). Building results from a simple answer, and reading them
back as one, is :mod:`pai_lab.labeling.simple_answers`; :class:`Checker` offers both.

Every stored answer goes through :func:`normalize`, which rebuilds each element with the key
order of the iTAG export and writes whole-number floats as integers, so the stored text is
exactly what the iTAG export writes (the export copies it without parsing).

``strict`` (answers from people and widgets) also checks geometry against the item: boxes
inside the image, spans inside the text with the text they claim, relations between marked
entities. Imported result files are kept as they are (iTAG's own examples have boxes past the
image's edge and placeholder span texts) but still must have the right shapes and labels.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from pai_lab.errors import BadInput
from pai_lab.labeling import simple_answers
from pai_lab.labeling.simple_answers import matches, source_text
from pai_lab.labeling.templates import QuestionComponent, TemplateSpec


def dumps(obj: Any) -> str:
    """Compact UTF-8 JSON, as iTAG writes it."""
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


def _num(v: Any, where: str) -> int | float:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise BadInput(f"{where} must be a number, got {type(v).__name__}", "results")
    if isinstance(v, float) and v.is_integer():
        return int(v)
    return v


def _int(v: Any, where: str) -> int:
    n = _num(v, where)
    if not isinstance(n, int):
        raise BadInput(f"{where} must be a whole number, got {v!r}", "results")
    return n


def _labels_value(value: Any, allowed: list[str], multi: bool, where: str) -> str | list[str]:
    if multi:
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise BadInput(f"{where} must be a list of labels (this question allows several)", "results")
        values = value
    else:
        if not isinstance(value, str):
            raise BadInput(f"{where} must be one label (a string); this question allows one", "results")
        values = [value]
    if len(set(values)) != len(values):
        raise BadInput(f"{where} repeats a label", "results")
    for v in values:
        if v not in allowed:
            choices = ", ".join(allowed) if allowed else "none (this question has no labels)"
            raise BadInput(f"{where}: unknown label {v!r}; labels are: {choices}", "results")
    return value


class Checker:
    """Checks and normalizes results for one task's template and label set."""

    def __init__(self, spec: TemplateSpec, labels: list[str]):
        self.spec = spec
        self.labels = labels

    def allowed(self, q: QuestionComponent) -> list[str]:
        return list(q.labels) if q.labels is not None else self.labels

    # ------------------------------------------------------------------ normalize results

    def normalize(self, results: Any, data: dict, *, strict: bool = True) -> list:
        if isinstance(results, dict) and "results" in results:
            results = results["results"]
        if not isinstance(results, list):
            raise BadInput("results must be a list with one element per question of the template", "results")
        out: list = []
        pos = 0
        entities: list[dict] | None = None
        for qi, q in enumerate(self.spec.questions):
            el = results[pos] if pos < len(results) else None
            if el is None or not matches(q, el):
                if q.required and el is not None:
                    raise BadInput(
                        f"results[{pos}] does not answer question {qi + 1} ({q.title!r}, a {q.type} "
                        f"question): {self._expect(q)}",
                        "results",
                    )
                if q.required:
                    raise BadInput(
                        f"results has no answer to question {qi + 1} ({q.title!r}): {self._expect(q)}", "results"
                    )
                continue
            where = f"results[{pos}]"
            norm = getattr(self, f"_{q.type}")(q, el, data, strict, where, entities)
            if q.type == "spans":
                entities = norm["objects"]
            out.append(norm)
            pos += 1
        if pos < len(results):
            raise BadInput(
                f"results[{pos}] answers no question of the template ({len(self.spec.questions)} "
                "question(s)); remove it",
                "results",
            )
        return out

    @staticmethod
    def _expect(q: QuestionComponent) -> str:
        return {
            "single": 'expected {"questionId", "data": "<label>", "markTitle", "type": "survey/value"}',
            "multi": 'expected {"questionId", "data": ["<label>", ...], "markTitle", "type": "survey/multivalue"}',
            "text": 'expected {"questionId", "data": "<text>", "markTitle", "type": "survey/value"}',
            "boxes": 'expected {"questionId", "data": [shapes], "rotation", "markTitle", "width", "type": "image", '
            '"height"}',
            "spans": 'expected {"objects": [spans], "empty": false}',
            "relations": 'expected a list of {"result", "from", "to"}',
            "segments": 'expected {"duration", "objects": [segments], "empty": false}',
        }[q.type]

    def _survey(self, q, el, where, multi: bool):
        want = "survey/multivalue" if multi else "survey/value"
        if el.get("type") != want:
            raise BadInput(f"{where}.type must be {want!r} for question {q.title!r}", "results")
        if q.type == "text":
            if not isinstance(el.get("data"), str):
                raise BadInput(f"{where}.data must be text for question {q.title!r}", "results")
            data = el["data"]
        else:
            data = _labels_value(el.get("data"), self.allowed(q), multi, f"{where}.data")
        return {"questionId": q.id, "data": data, "markTitle": q.title, "type": want}

    def _single(self, q, el, data, strict, where, _):
        return self._survey(q, el, where, False)

    def _multi(self, q, el, data, strict, where, _):
        return self._survey(q, el, where, True)

    def _text(self, q, el, data, strict, where, _):
        return self._survey(q, el, where, False)

    def _boxes(self, q, el, data, strict, where, _):
        if el.get("type") != "image":
            raise BadInput(f"{where}.type must be 'image' for question {q.title!r}", "results")
        width, height = _int(el.get("width"), f"{where}.width"), _int(el.get("height"), f"{where}.height")
        if width <= 0 or height <= 0:
            raise BadInput(f"{where}: width and height must be the image's size in pixels (> 0)", "results")
        shapes = el.get("data")
        if not isinstance(shapes, list):
            raise BadInput(f"{where}.data must be a list of shapes", "results")
        out = []
        for i, s in enumerate(shapes):
            w = f"{where}.data[{i}]"
            if not isinstance(s, dict) or s.get("type") != "image/polygon":
                raise BadInput(f'{w} must be a shape {{"id", "type": "image/polygon", "value", "labels"}}', "results")
            value = s.get("value")
            if not isinstance(value, list) or len(value) < 3:
                raise BadInput(f"{w}.value must list at least 3 [x, y] points (a rectangle has 4)", "results")
            points = []
            for j, p in enumerate(value):
                if not isinstance(p, list) or len(p) != 2:
                    raise BadInput(f"{w}.value[{j}] must be an [x, y] pair", "results")
                x, y = _num(p[0], f"{w}.value[{j}][0]"), _num(p[1], f"{w}.value[{j}][1]")
                if strict and not (0 <= x <= width and 0 <= y <= height):
                    raise BadInput(
                        f"{w}.value[{j}] = [{x}, {y}] is outside the {width}x{height} image; "
                        "keep boxes inside the image",
                        "results",
                    )
                points.append([x, y])
            out.append(
                {
                    "id": str(s.get("id") or uuid.uuid4()),
                    "type": "image/polygon",
                    "value": points,
                    "labels": self._shape_labels(q, s.get("labels"), f"{w}.labels"),
                }
            )
        return {
            "questionId": q.id,
            "data": out,
            "rotation": _int(el.get("rotation", 0), f"{where}.rotation"),
            "markTitle": q.title,
            "width": width,
            "type": "image",
            "height": height,
        }

    def _shape_labels(self, q, labels, where) -> dict:
        if not isinstance(labels, dict):
            raise BadInput(f"{where} must be an object: {{{q.result_key!r}: <label>}}", "results")
        out: dict = {}
        for key, value in labels.items():
            if q.text_title and key == q.text_title:
                if not isinstance(value, str):
                    raise BadInput(f"{where}.{key} must be the transcribed text", "results")
                out[key] = value
            elif key == q.result_key:
                out[key] = _labels_value(value, self.allowed(q), q.multi, f"{where}.{key}")
            else:
                keys = [k for k in (q.text_title, q.result_key) if k]
                raise BadInput(f"{where}: unknown key {key!r}; keys are {keys}", "results")
        if q.text_title and q.text_title not in out:
            raise BadInput(f"{where} needs the transcribed text under {q.text_title!r}", "results")
        if not q.text_title and q.result_key not in out:
            raise BadInput(f"{where} needs a label under {q.result_key!r}", "results")
        return out

    def _spans(self, q, el, data, strict, where, _):
        objects = el.get("objects")
        if not isinstance(objects, list):
            raise BadInput(f"{where}.objects must be a list of spans", "results")
        text = source_text(q, data)
        out = []
        for i, o in enumerate(objects):
            w = f"{where}.objects[{i}]"
            if not isinstance(o, dict):
                raise BadInput(f'{w} must be a span {{"result", "color", "id", "text", "start", "end"}}', "results")
            start, end = _int(o.get("start"), f"{w}.start"), _int(o.get("end"), f"{w}.end")
            if start < 0 or end < start:
                raise BadInput(
                    f"{w}: start {start} and end {end} must satisfy 0 <= start <= end (end is inclusive)", "results"
                )
            span_text = o.get("text")
            if strict:
                if text is None or end >= len(text):
                    raise BadInput(
                        f"{w}: span {start}..{end} goes beyond the text ({len(text or '')} "
                        "characters; end is inclusive)",
                        "results",
                    )
                if span_text is None:
                    span_text = text[start : end + 1]
                elif span_text != text[start : end + 1]:
                    raise BadInput(
                        f"{w}.text {span_text!r} is not the text at {start}..{end} ({text[start : end + 1]!r})",
                        "results",
                    )
            if not isinstance(span_text, str):
                raise BadInput(f"{w}.text must be the span's text", "results")
            result = o.get("result")
            if not isinstance(result, dict) or set(result) != {q.result_key}:
                raise BadInput(f"{w}.result must be {{{q.result_key!r}: <label>}}", "results")
            out.append(
                {
                    "result": {
                        q.result_key: _labels_value(
                            result[q.result_key], self.allowed(q), q.multi, f"{w}.result.{q.result_key}"
                        )
                    },
                    "color": o.get("color"),
                    "id": o.get("id"),
                    "text": span_text,
                    "start": start,
                    "end": end,
                }
            )
        return {"objects": out, "empty": bool(el.get("empty", False))}

    def _endpoint(self, p, where, strict, entities) -> dict:
        if not isinstance(p, dict):
            raise BadInput(f'{where} must be {{"x", "y", "start", "end", "text"}}', "results")
        start, end = _int(p.get("start"), f"{where}.start"), _int(p.get("end"), f"{where}.end")
        text = p.get("text")
        if strict and not any(e["start"] == start and e["end"] == end for e in entities or []):
            raise BadInput(f"{where}: no marked entity spans {start}..{end}; mark the entity first", "results")
        if text is None and entities:
            text = next((e["text"] for e in entities if e["start"] == start and e["end"] == end), None)
        if not isinstance(text, str):
            raise BadInput(f"{where}.text must be the entity's text", "results")
        return {
            "x": _int(p.get("x", 0), f"{where}.x"),
            "y": _int(p.get("y", 0), f"{where}.y"),
            "start": start,
            "end": end,
            "text": text,
        }

    def _relations(self, q, el, data, strict, where, entities):
        out = []
        for i, r in enumerate(el):
            w = f"{where}[{i}]"
            if not isinstance(r, dict):
                raise BadInput(f'{w} must be a relation {{"result", "from", "to"}}', "results")
            result = r.get("result")
            if not isinstance(result, dict) or set(result) != {q.result_key}:
                raise BadInput(f"{w}.result must be {{{q.result_key!r}: <relation label>}}", "results")
            out.append(
                {
                    "result": {
                        q.result_key: _labels_value(
                            result[q.result_key], self.allowed(q), q.multi, f"{w}.result.{q.result_key}"
                        )
                    },
                    "from": self._endpoint(r.get("from"), f"{w}.from", strict, entities),
                    "to": self._endpoint(r.get("to"), f"{w}.to", strict, entities),
                }
            )
        return out

    def _segments(self, q, el, data, strict, where, _):
        objects = el.get("objects")
        if not isinstance(objects, list):
            raise BadInput(f"{where}.objects must be a list of segments", "results")
        duration = _num(el.get("duration", 0), f"{where}.duration")
        out = []
        for i, o in enumerate(objects):
            w = f"{where}.objects[{i}]"
            if not isinstance(o, dict):
                raise BadInput(f'{w} must be a segment {{"result", "color", "id", "start", "end"}}', "results")
            start, end = _num(o.get("start"), f"{w}.start"), _num(o.get("end"), f"{w}.end")
            if start < 0 or end <= start or (strict and duration and end > duration):
                raise BadInput(
                    f"{w}: segment {start}..{end} s must satisfy 0 <= start < end"
                    + (f" <= duration {duration}" if duration else ""),
                    "results",
                )
            out.append(
                {
                    "result": self._shape_labels(q, o.get("result"), f"{w}.result"),
                    "color": o.get("color"),
                    "id": str(o.get("id") or "wavesurfer_" + uuid.uuid4().hex[:11]),
                    "start": start,
                    "end": end,
                }
            )
        return {"duration": duration, "objects": out, "empty": bool(el.get("empty", False))}

    # ------------------------------------------------------------------ simple answers

    def build(self, answer: Any, data: dict) -> list:
        """Results from a simple answer keyed by question title or id (see docs/labeling.md)."""
        return simple_answers.build(self.spec.questions, answer, data)

    def simple(self, results: Any) -> dict | None:
        """Stored results as the simple answer build() takes back, keyed by question title: what the
        labeler page edits, so it never reads or writes the iTAG shape itself."""
        return simple_answers.simple(self.spec.questions, results)
