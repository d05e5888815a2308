"""Export and import formats, one module each.

A format module has ``NAME`` and, for export, ``fits(ctx)`` (raises BadInput when the task's
template has nothing this format can hold) and either ``export(ctx)`` yielding text chunks of
one file, or ``export_to(ctx, fs, path)`` writing a folder or shard set and returning the paths
written. Importers have ``parse(text, spec_hint)`` returning an :class:`Imported`.

The modules are listed in :data:`EXPORTERS` and :data:`IMPORTERS` at the end of this file.

Exports read the task's items through ``ctx.rows()``, a fresh pass over the store in item
order, so memory stays flat whatever the number of items.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from pai_lab.errors import BadInput
from pai_lab.labeling.templates import QuestionComponent, TemplateSpec

FOLDER_FORMATS = {"yolo", "tfrecord"}
SUFFIX = {"itag": ".manifest", "easyvision": ".csv", "label-studio": ".json", "coco": ".json", "conll": ".conll"}


@dataclass
class Row:
    """One item as stored: its data and each stage's results, as compact JSON text."""

    seq: int
    data: str
    label: str | None
    check: str | None
    verify: str | None
    prelabel: str | None
    prelabel_source: str | None
    skipped: str | None
    prelabel_score: float | None = None
    label_origin: str | None = None  # prediction, prediction-changed or manual, per stage
    check_origin: str | None = None
    verify_origin: str | None = None

    @property
    def final(self) -> str | None:
        """The most reviewed answer: accepted, else checked, else labeled."""
        return self.verify or self.check or self.label


@dataclass
class ExportContext:
    task_id: str
    name: str
    template: str
    spec: TemplateSpec
    labels: list[str]
    flow: str
    rows: Callable[[], Iterator[Row]]
    options: dict[str, Any] = field(default_factory=dict)
    destination: str = ""  # where a folder written under a temporary name will end up
    # the server's containment policy for item sources an export reads (images copied or embedded)
    check_source: Callable[[str], str] | None = None
    notes: list[str] = field(default_factory=list)  # options the export took but ignored, and why

    def readable(self, source: str) -> str:
        return self.check_source(source) if self.check_source is not None else source

    def questions(self, *types: str) -> list[tuple[int, QuestionComponent]]:
        return [(i, q) for i, q in enumerate(self.spec.questions) if q.type in types]


@dataclass
class Imported:
    """What an importer read: items with their answers per stage, and what it learnt."""

    items: list
    task_id: str | None = None
    template: str | None = None
    labels: list[str] = field(default_factory=list)
    multi: bool = False
    relation_labels: list[str] = field(default_factory=list)
    stages: list[str] = field(default_factory=list)
    spec: dict | None = None  # a custom template the task needs, created when the workspace lacks it


def exporter(name: str):
    if name not in EXPORTERS:
        raise BadInput(f"unknown export format {name!r}; formats are {', '.join(EXPORTERS)}", "format")
    return EXPORTERS[name]


def importer(name: str):
    if name not in IMPORTERS:
        raise BadInput(f"cannot import {name!r}; import formats are {', '.join(IMPORTERS)}", "format")
    return IMPORTERS[name]


def chunked(pieces: Iterator[str], size: int = 1 << 16) -> Iterator[str]:
    """Join small pieces into chunks of about ``size`` characters for streaming."""
    buf: list[str] = []
    n = 0
    for p in pieces:
        buf.append(p)
        n += len(p)
        if n >= size:
            yield "".join(buf)
            buf, n = [], 0
    if buf:
        yield "".join(buf)


def shape_labels(q: QuestionComponent, labels: dict) -> list[str]:
    value = labels.get(q.result_key)
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]


def bbox(points: list) -> tuple[float, float, float, float]:
    xs = [p[0] for p in points]
    ys = [p[1] for p in points]
    return min(xs), min(ys), max(xs), max(ys)


def is_rect(points: list) -> bool:
    """An axis-aligned rectangle drawn TL, TR, BR, BL (the order the rectangle tool writes)."""
    if len(points) != 4:
        return False
    (x1, y1), (x2, y2), (x3, y3), (x4, y4) = points
    return x1 == x4 and x2 == x3 and y1 == y2 and y3 == y4 and x1 < x2 and y1 < y3


def image_elements(ctx: ExportContext, results: list) -> list[tuple[QuestionComponent, dict]]:
    out = []
    for q, el in zip_results(ctx.spec, results):
        if q.type == "boxes":
            out.append((q, el))
    return out


def zip_results(spec: TemplateSpec, results: list) -> Iterator[tuple[QuestionComponent, Any]]:
    """Pair each stored results element with its question (optional questions may be absent)."""
    pos = 0
    for q in spec.questions:
        if pos >= len(results):
            return
        el = results[pos]
        if q.type == "relations":
            ok = isinstance(el, list)
        elif q.type in ("spans", "segments"):
            ok = isinstance(el, dict) and "objects" in el and (("duration" in el) == (q.type == "segments"))
        else:
            ok = isinstance(el, dict) and el.get("questionId") == q.id
        if ok:
            yield q, el
            pos += 1


def parse_json(text: str, what: str) -> Any:
    try:
        return json.loads(text)
    except ValueError as exc:
        raise BadInput(f"the {what} file is not valid JSON: {exc}", "content") from None


def data_value(data: dict, key: str) -> Any:
    return data.get(key) if isinstance(data, dict) else None


def collect_labels(spec: TemplateSpec, results_lists) -> tuple[list[str], list[str]]:
    """(labels, relation labels) used in these results, in order of first use."""
    labels: dict[str, None] = {}
    relations: dict[str, None] = {}

    def add(target, value):
        target.update(dict.fromkeys(v for v in (value if isinstance(value, list) else [value]) if isinstance(v, str)))

    for results in results_lists:
        for q, el in zip_results(spec, results or []):
            if q.labels is not None:
                continue  # the question brings its own choices
            if q.type in ("single", "multi"):
                add(labels, el.get("data"))
            elif q.type == "boxes":
                for s in el.get("data") or []:
                    add(labels, (s.get("labels") or {}).get(q.result_key))
            elif q.type in ("spans", "segments"):
                for o in el.get("objects") or []:
                    add(labels, (o.get("result") or {}).get(q.result_key))
    for results in results_lists:
        for q, el in zip_results(spec, results or []):
            if q.type == "relations":
                for r in el:
                    add(relations, (r.get("result") or {}).get(q.result_key) if isinstance(r, dict) else None)
    return list(labels), list(relations)


# The format modules, by the name users give. Imported last: they use the helpers above.
from pai_lab.labeling.formats import (  # noqa: E402
    coco,
    conll,
    easyvision,
    itag,
    labelstudio,
    tfrecord,
    yolo,
)

EXPORTERS = {
    "itag": itag,
    "easyvision": easyvision,
    "label-studio": labelstudio,
    "coco": coco,
    "yolo": yolo,
    "conll": conll,
    "tfrecord": tfrecord,
}
IMPORTERS = {"itag": itag, "label-studio": labelstudio, "coco": coco, "easyvision": easyvision}
