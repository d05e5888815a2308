"""EasyVision annotation CSV (the PAI labeling format the ``convert`` command reads)::

    #数据ID,原始数据,融合答案
    1,"{""url"":""a.jpg""}","{""option"":""cat""}"

One row per item with a final answer: its position from 1, ``{"url": <image>}`` and the answer
in one of the seven shapes of :mod:`.easyvision_shapes`. The shape follows the template
(classification, multi-label, detection, end-to-end OCR, or text detection for an OCR task
without transcripts, text recognition for an image with a text question) or the ``shape``
option; ``shape=segmentation`` draws a box task's polygons into PNG masks written beside the
CSV (``<name>_masks/<id>.png``, with ``<name>_class_list.txt``: line k is mask value k).

Import reads any of the seven shapes back into a task of the matching template, reading the
images' sizes (boxes) and the masks (segmentation) through the server's policy for sources.
"""

from __future__ import annotations

import csv
import io
import json
import posixpath
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from pai_lab.errors import BadInput
from pai_lab.labeling.formats import ExportContext, Imported, chunked, collect_labels, zip_results
from pai_lab.labeling.formats import easyvision_masks as masks
from pai_lab.labeling.formats import easyvision_shapes as shapes
from pai_lab.labeling.intake import NewItem
from pai_lab.labeling.templates import TemplateSpec, builtin, parse_spec

NAME = "easyvision"
HEADER = "#数据ID,原始数据,融合答案\n"
READS_FILES = True  # parse() takes read= and labels=
MAX_ROWS = 1_000_000
TEMPLATE_OF = {
    "classification": "image-classification",
    "multi-label": "image-classification",
    "detection": "object-detection",
    "segmentation": "object-detection",
    "text-recognition": shapes.TEXT_RECOGNITION,
    "text-detection": "ocr",
    "text-end2end": "ocr",
}


@dataclass
class Sample:
    """One item as EasyVision sees it; segmentation answers carry their mask as class ids."""

    key: str
    url: str
    answer: Any
    mask: np.ndarray | None = None


def shape(ctx: ExportContext) -> str:
    """The answer shape this export writes: the ``shape`` option, else what the template holds."""
    given = ctx.options.get("shape")
    if ctx.spec.contents[0].type != "image":
        raise BadInput(
            f"the EasyVision CSV holds image answers; the {ctx.template} template labels {ctx.spec.contents[0].type}",
            "format",
        )
    if given is not None:
        if given not in shapes.SHAPES:
            raise BadInput(f"options.shape {given!r}: use one of {', '.join(shapes.SHAPES)}", "options.shape")
        if shapes.question_for(ctx.spec, given) is None:
            raise BadInput(
                f"options.shape {given!r}: the {ctx.template} template has no question for it", "options.shape"
            )
        return str(given)
    for q in ctx.spec.questions:
        if q.type == "single":
            return "classification"
        if q.type == "multi":
            return "multi-label"
        if q.type == "text":
            return "text-recognition"
        if q.type == "boxes":
            if not q.text_title:
                return "detection"
            return "text-end2end" if _has_transcripts(ctx, q.text_title) else "text-detection"
    raise BadInput(
        f"the EasyVision CSV holds classification, detection, segmentation and OCR answers; the {ctx.template} "
        "template has none of them",
        "format",
    )


def _has_transcripts(ctx: ExportContext, title: str) -> bool:
    """Whether any shape of the task carries a transcript (else its boxes are text detection)."""
    for r in ctx.rows():
        if r.final is None or title not in r.final:
            continue
        for q, el in zip_results(ctx.spec, json.loads(r.final)):
            if q.type == "boxes" and any((s.get("labels") or {}).get(title) for s in el.get("data") or []):
                return True
    return False


def fits(ctx: ExportContext) -> None:
    shape(ctx)


def needs_folder(ctx: ExportContext) -> bool:
    return shape(ctx) == "segmentation"


def samples(ctx: ExportContext, kind: str | None = None) -> Iterator[Sample]:
    """The task's answered items in ``kind`` (default: :func:`shape`), masks drawn in memory."""
    kind = kind or shape(ctx)
    offset = masks.class_offset(ctx.labels)
    ids = {name: k + offset for k, name in enumerate(ctx.labels)}
    for r in ctx.rows():
        if r.final is None:
            continue
        data = json.loads(r.data)
        value = shapes.answer_of(kind, ctx.spec, json.loads(r.final), data)
        if value is None:
            continue
        url = str(data.get(ctx.spec.contents[0].key))
        if kind == "segmentation":
            drawn = [(points, ids[name]) for points, name in value["polygons"] if name in ids]
            yield Sample(str(r.seq + 1), url, {"ossUrl": ""}, masks.rasterize(value["width"], value["height"], drawn))
        else:
            yield Sample(str(r.seq + 1), url, value)


def _compact(obj) -> str:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


def _lines(items: Iterator[Sample], mask_url: Callable[[Sample], str] | None = None) -> Iterator[str]:
    yield HEADER
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    for sample in items:
        answer = {"ossUrl": mask_url(sample)} if mask_url is not None else sample.answer
        writer.writerow([sample.key, _compact({"url": sample.url}), _compact(answer)])
        yield buf.getvalue()
        buf.seek(0)
        buf.truncate()


def export(ctx: ExportContext) -> Iterator[str]:
    return chunked(_lines(samples(ctx)))


def export_to(ctx: ExportContext, fs, path: str) -> list[str]:
    """Segmentation: the CSV at ``path``, its masks and class list beside it."""
    stem = path[: -len(".csv")] if path.endswith(".csv") else path
    folder = f"{stem}_masks"
    fs.makedirs(folder, exist_ok=True)
    written: list[str] = []
    remote = "://" in fs.unstrip_protocol(path) and not fs.unstrip_protocol(path).startswith("file://")

    def mask_url(sample: Sample) -> str:
        target = f"{folder}/{sample.key}.png"
        assert sample.mask is not None
        with fs.open(target, "wb") as f:
            f.write(masks.encode(sample.mask))
        written.append(target)
        return fs.unstrip_protocol(target) if remote else target

    with fs.open(path, "wb") as f:
        for chunk in chunked(_lines(samples(ctx, "segmentation"), mask_url)):
            f.write(chunk.encode("utf-8"))
    names = ctx.labels if masks.class_offset(ctx.labels) == 0 else ["background", *ctx.labels]
    with fs.open(f"{stem}_class_list.txt", "wb") as f:
        f.write("".join(n + "\n" for n in names).encode("utf-8"))
    return [path, f"{stem}_class_list.txt", *written]


# ---------------------------------------------------------------- import


def beside(folder: str, url: str) -> str:
    """A URL of the CSV as a location: absolute ones as they are, relative ones inside ``folder``."""
    if "://" in url or url.startswith("/"):
        return url
    return posixpath.join(folder, url)


def read_rows(text: str) -> Iterator[tuple[int, str, dict, Any]]:
    """(line number, data id, raw data, answer) of each row; ``#`` lines are comments."""
    reader = csv.reader(io.StringIO(text.lstrip("\ufeff")))
    count = 0
    for row in reader:
        line = reader.line_num
        if not row or not "".join(row).strip() or row[0].lstrip().startswith("#"):
            continue
        count += 1
        if count > MAX_ROWS:
            raise BadInput(f"the CSV has more than {MAX_ROWS:,} rows; split it", "content")
        if len(row) != 3:
            raise BadInput(
                f"line {line}: a row has 3 columns (数据ID, 原始数据, 融合答案), this one {len(row)}", "content"
            )
        try:
            raw, answer = json.loads(row[1]), json.loads(row[2])
        except ValueError as exc:
            raise BadInput(f"line {line}: 原始数据 and 融合答案 must be JSON ({exc})", "content") from None
        if not isinstance(raw, dict) or not isinstance(raw.get("url"), str) or not raw["url"]:
            raise BadInput(f'line {line}: 原始数据 must be {{"url": "<image>"}}', "content")
        yield line, row[0].strip(), raw, answer


def file_shape(rows: list[tuple[int, str, dict, Any]]) -> str:
    found: str | None = None
    for line, _, _, answer in rows:
        kind = shapes.shape_of(answer)
        if kind is None:
            raise BadInput(f"line {line}: 融合答案 has none of the EasyVision answer shapes", "content")
        pair = {found, kind}
        if found is None or kind == found:
            found = kind
        elif pair == {"classification", "multi-label"}:
            found = "multi-label"
        elif pair == {"text-detection", "text-end2end"}:
            found = "text-end2end"
        else:
            raise BadInput(f"line {line}: a {kind} answer in a file of {found} answers", "content")
    if found is None:
        raise BadInput("the CSV has no rows to import", "content")
    return found


def parse(
    text: str,
    spec: TemplateSpec | None,
    read: Callable[[str], bytes] | None = None,
    labels: list[str] | None = None,
    base: str | None = None,
) -> Imported:
    """An EasyVision CSV -> a task of the template its answers fit. ``read`` returns a source's bytes
    (images for their size, masks); ``labels`` is the class list masks index (value k: labels[k]);
    relative URLs are taken from ``base`` when given."""
    from PIL import Image

    rows = list(read_rows(text))
    if base:
        for _, _, raw, answer in rows:
            raw["url"] = beside(base, raw["url"])
            if isinstance(answer, dict) and isinstance(answer.get("ossUrl"), str):
                answer["ossUrl"] = beside(base, answer["ossUrl"])
    kind = file_shape(rows)
    template = TEMPLATE_OF[kind]
    if spec is None:
        if kind == "text-recognition":
            spec = parse_spec(shapes.TEXT_RECOGNITION_SPEC)
        else:
            spec = builtin(template, multi=kind == "multi-label")
    q = shapes.question_for(spec, kind)
    if q is None:
        raise BadInput(f"the file's {kind} answers fit no question of the template; leave template out", "template")
    class_names = list(labels or [])
    offset = masks.class_offset(class_names)

    def read_bytes(source: str, line: int) -> bytes:
        if read is None:
            raise BadInput(f"line {line}: cannot read {source!r} here", "content")
        return read(source)

    def mask_shapes(line: int):
        def outlines(url: str):
            ids = masks.decode(read_bytes(url, line), f"line {line}: mask {url!r}")
            found = []
            for points, value in masks.trace(ids):
                k = value - offset
                if labels:
                    if not 0 <= k < len(class_names):
                        raise BadInput(
                            f"line {line}: mask value {value} has no class in labels ({len(class_names)} given)",
                            "labels",
                        )
                    name = class_names[k]
                else:
                    name = f"class_{value}"
                found.append((points, name))
            return found, ids.shape[1], ids.shape[0]

        return outlines

    def size_of(url: str, line: int):
        def size():
            try:
                with Image.open(io.BytesIO(read_bytes(url, line))) as image:
                    return image.size
            except (BadInput, OSError, ValueError):
                return None

        return size

    items: list[NewItem] = []
    for line, _, raw, answer in rows:
        data = {spec.contents[0].key: raw["url"]}
        where = f"line {line}"
        results = shapes.results_of(kind, q, answer, data, where, size_of(raw["url"], line), mask_shapes(line))
        items.append(NewItem(data, {"label": results}))
    found, _ = collect_labels(spec, [item.answers["label"] for item in items])
    if kind == "segmentation" and not labels:
        top = max((int(n.split("_")[1]) for n in found), default=0)
        found = ["background", *(f"class_{k}" for k in range(1, top + 1))]
    return Imported(
        items=items,
        template=template,
        labels=found,
        multi=kind == "multi-label",
        stages=["label"],
        spec=shapes.TEXT_RECOGNITION_SPEC if kind == "text-recognition" else None,
    )
