"""The iTAG result manifest: the input line with ``label-<taskId>``, ``label-<taskId>-check``
and ``label-<taskId>-verify`` added, each ``{"results": [...]}``, one compact UTF-8 JSON object
per line. With the option ``origins`` each also says where its answer came from (``"origin"``:
``prediction``, ``prediction-changed`` or ``manual``), which iTAG itself does not write.

Stored answers are already in iTAG's exact shape (see :mod:`pai_lab.labeling.answers`), so a
line is assembled from the stored text without parsing it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

from pai_lab.errors import BadInput
from pai_lab.labeling import flow as fl
from pai_lab.labeling.formats import ExportContext, Imported, chunked
from pai_lab.labeling.intake import NewItem

NAME = "itag"
# label-<taskId> holds the label stage's results; the other stages add their answer column: -check, -verify
SUFFIX = {stage: "" if stage == "label" else f"-{column}" for stage, column in fl.STAGE_COLUMN.items()}
KEY = re.compile(r"^label-(\d+|[^-]+?)(" + "|".join(s for s in SUFFIX.values() if s) + ")?$")
STAGE_SUFFIX = {suffix or None: stage for stage, suffix in SUFFIX.items()}
MEDIA = {
    ".jpg": "image",
    ".jpeg": "image",
    ".png": "image",
    ".bmp": "image",
    ".gif": "image",
    ".webp": "image",
    ".mp4": "video",
    ".avi": "video",
    ".mov": "video",
    ".webm": "video",
    ".wav": "audio",
    ".mp3": "audio",
    ".flac": "audio",
    ".ogg": "audio",
    ".m4a": "audio",
}


def fits(ctx: ExportContext) -> None:
    return None


def lines(ctx: ExportContext) -> Iterator[str]:
    key = f',"label-{ctx.task_id}'
    origins = bool(ctx.options.get("origins"))  # opt-in: iTAG's own lines carry nothing more

    def end(origin: str | None) -> str:
        return f',"origin":"{origin}"}}' if origins and origin else "}"

    stages = [
        (f'{key}{SUFFIX[stage]}":{{"results":', fl.STAGE_COLUMN[stage], fl.ORIGIN_COLUMN[stage]) for stage in fl.STAGES
    ]
    for r in ctx.rows():
        parts = ['{"data":', r.data]
        for head, column, origin in stages:
            text = getattr(r, column)
            if text is not None:
                parts += [head, text, end(getattr(r, origin))]
        parts.append("}\n")
        yield "".join(parts)


def export(ctx: ExportContext) -> Iterator[str]:
    return chunked(lines(ctx))


def parse(text: str, spec_hint=None) -> Imported:
    """Read a manifest with or without results; errors give the line number."""
    items = []
    task_id = None
    stages: set[str] = set()
    for n, raw in enumerate(text.splitlines(), 1):
        if not raw.strip():
            continue
        try:
            line = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise BadInput(
                f'line {n}: not a JSON object ({exc.msg}); each line must be {{"data": {{...}}}}', "content"
            ) from None
        if not isinstance(line, dict) or not isinstance(line.get("data"), dict):
            raise BadInput(f'line {n}: each line must be an object with a "data" object', "content")
        answers = {}
        for key, value in line.items():
            if key == "data":
                continue
            m = KEY.match(key)
            if not m:
                raise BadInput(
                    f"line {n}: unknown key {key!r}; a result line has data and label-<taskId>[-check|-verify]",
                    "content",
                )
            if task_id is None:
                task_id = m.group(1)
            elif m.group(1) != task_id:
                raise BadInput(
                    f"line {n}: results of task {m.group(1)} mixed with task {task_id}; import one "
                    "task's results at a time",
                    "content",
                )
            if not isinstance(value, dict) or not isinstance(value.get("results"), list):
                raise BadInput(f'line {n}: {key} must be {{"results": [...]}}', "content")
            stage = STAGE_SUFFIX[m.group(2)]
            answers[stage] = value["results"]
            stages.add(stage)
        items.append(NewItem(line["data"], answers))
    if not items:
        raise BadInput("the file has no lines to import", "content")
    out = Imported(
        items=items,
        task_id=task_id if task_id and task_id.isdigit() else None,
        stages=[s for s in ("label", "check", "accept") if s in stages],
    )
    out.template, out.labels, out.multi, out.relation_labels = guess(items)
    return out


def _media(items) -> str:
    for item in items[:50]:
        source = item.data.get("source")
        if isinstance(source, str):
            suffix = "." + source.rsplit(".", 1)[-1].lower() if "." in source[-6:] else ""
            if suffix in MEDIA:
                return MEDIA[suffix]
    return "text"


def guess(items) -> tuple[str | None, list[str], bool, list[str]]:
    """The built-in template, label set and selection mode that fit these results."""
    labels: dict[str, None] = {}
    relation_labels: dict[str, None] = {}
    multi = False
    template = None
    media = _media(items)

    def add(value):
        nonlocal multi
        if isinstance(value, list):
            multi = True
            labels.update(dict.fromkeys(v for v in value if isinstance(v, str)))
        elif isinstance(value, str):
            labels[value] = None

    for item in items:
        for results in item.answers.values():
            kinds = []
            for el in results:
                if isinstance(el, list):
                    kinds.append("relations")
                    for r in el:
                        for v in (r.get("result") or {}).values() if isinstance(r, dict) else ():
                            relation_labels.update(dict.fromkeys(v if isinstance(v, list) else [v]))
                elif not isinstance(el, dict):
                    continue
                elif el.get("type") == "image":
                    ocr = any("OCR识别结果" in (s.get("labels") or {}) for s in el.get("data") or [])
                    kinds.append("ocr" if ocr or el.get("markTitle") == "OCR标签配置" else "boxes")
                    for s in el.get("data") or []:
                        for k, v in (s.get("labels") or {}).items():
                            if k != "OCR识别结果":
                                add(v)
                elif "duration" in el:
                    kinds.append("segments")
                    for o in el.get("objects") or []:
                        for k, v in (o.get("result") or {}).items():
                            if k != "音频识别结果":
                                add(v)
                elif "objects" in el:
                    kinds.append("spans")
                    for o in el.get("objects") or []:
                        for v in (o.get("result") or {}).values():
                            add(v)
                elif el.get("type") == "survey/multivalue":
                    kinds.append(f"multi{el.get('questionId')}")
                    add(el.get("data"))
                elif el.get("type") == "survey/value":
                    kinds.append(f"value{el.get('questionId')}")
                    if el.get("questionId") == "2":
                        add(el.get("data"))
            if template is None:
                template = _template_of(kinds, media)
    return template, list(labels), multi, list(relation_labels)


def _template_of(kinds: list[str], media: str) -> str | None:
    if kinds in (["value2"], ["multi2"]):
        return f"{media}-classification" if media != "text" else "text-classification"
    if kinds == ["boxes"]:
        return "object-detection"
    if kinds == ["ocr"]:
        return "ocr"
    if kinds == ["spans"]:
        return "ner"
    if kinds == ["spans", "relations"]:
        return "relation"
    if kinds == ["segments"]:
        return "audio-segmentation"
    if kinds and kinds[0] == "value1" and all(k == "multi3" for k in kinds[1:]) and media == "audio":
        return "asr"
    return None
