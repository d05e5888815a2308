"""COCO object detection JSON: ``images``, ``annotations``, ``categories``.

Each shape of a box question becomes an annotation with its ``bbox`` ([x, y, width, height]),
its polygon as ``segmentation`` (vertices in the order drawn, so the shape comes back exactly),
its ``area`` and, under ``attributes``, the shape id, every label and an OCR transcript.
Category ids follow the task's label order from 1. Images are the items with a final answer;
the file is written in two passes over the store, so memory stays flat.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from json.encoder import encode_basestring as _str

import orjson

from pai_lab.errors import BadInput
from pai_lab.labeling.formats import ExportContext, Imported, bbox, chunked, image_elements, parse_json, shape_labels
from pai_lab.labeling.intake import NewItem

NAME = "coco"


def fits(ctx: ExportContext) -> None:
    if not ctx.questions("boxes"):
        raise BadInput(
            f"COCO holds boxes and polygons; the {ctx.template} template has none. Use itag or label-studio", "format"
        )


def _area(points: list) -> float:
    return abs(sum(x1 * y2 - x2 * y1 for (x1, y1), (x2, y2) in zip(points, points[1:] + points[:1]))) / 2


def _num(v: float) -> float | int:
    return int(v) if isinstance(v, float) and v.is_integer() else v


def _json(obj) -> str:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


_SIZE = re.compile(r'"width":(\d+),"type":"image","height":(\d+)')
_ROTATION = re.compile(r'"rotation":(-?\d+),"markTitle"')


def document(ctx: ExportContext) -> Iterator[str]:
    categories = {name: i for i, name in enumerate(ctx.labels, 1)}
    yield '{"info":' + _json({"description": f"labeling task {ctx.name}", "task_id": ctx.task_id}) + ","
    yield '"categories":' + _json([{"id": i, "name": n, "supercategory": ""} for n, i in categories.items()]) + ","
    yield '"images":['
    q0 = ctx.questions("boxes")[0][1]
    sep = ""
    for r in ctx.rows():
        final = r.final
        if final is None:
            continue
        # stored answers are canonical iTAG text: the size can be read without parsing all of it
        size = _SIZE.search(final)
        width, height = (int(size.group(1)), int(size.group(2))) if size else (0, 0)
        rotation = _ROTATION.search(final)
        rot = f',"rotation":{rotation.group(1)}' if rotation and rotation.group(1) != "0" else ""
        name = json.loads(r.data).get(q0.bind or "source")
        yield f'{sep}{{"id":{r.seq + 1},"file_name":{_json(name)},"width":{width},"height":{height}{rot}}}'
        sep = ","
    yield '],"annotations":['
    sep = ""
    ann_id = 0
    label_text: dict[tuple, str] = {}  # a few distinct label lists, encoded once each
    for r in ctx.rows():
        final = r.final
        if final is None:
            continue
        image_id = r.seq + 1
        for q, el in image_elements(ctx, orjson.loads(final)):
            for s in el["data"]:
                labels = shape_labels(q, s["labels"])
                ann_id += 1
                points = s["value"]
                x1, y1, x2, y2 = bbox(points)
                cat = categories.get(labels[0], 0) if labels else 0
                text = ""
                if q.text_title and q.text_title in s["labels"]:
                    text = ',"text":' + _str(s["labels"][q.text_title])
                coords = ",".join(f"{x},{y}" for x, y in points)
                key = tuple(labels)
                encoded = label_text.get(key) or label_text.setdefault(key, _json(labels))
                yield (
                    f'{sep}{{"id":{ann_id},"image_id":{image_id},"category_id":{cat},"bbox":[{x1},{y1},'
                    f'{_num(x2 - x1)},{_num(y2 - y1)}],"area":{_num(_area(points))},"segmentation":[[{coords}]],'
                    f'"iscrowd":0,"attributes":{{"id":{_str(s["id"])},"labels":{encoded}{text}}}}}'
                )
                sep = ","
    yield "]}\n"


def export(ctx: ExportContext) -> Iterator[str]:
    return chunked(document(ctx))


def parse(text: str, spec) -> Imported:
    """COCO detection JSON -> one item per image, its annotations as rectangles or polygons."""
    from pai_lab.labeling.templates import builtin

    doc = parse_json(text, "COCO")
    if (
        not isinstance(doc, dict)
        or not isinstance(doc.get("images"), list)
        or not isinstance(doc.get("annotations"), list)
    ):
        raise BadInput("a COCO file is an object with images, annotations and categories lists", "content")
    cats = {}
    for i, c in enumerate(doc.get("categories") or []):
        if not isinstance(c, dict) or "id" not in c or not isinstance(c.get("name"), str):
            raise BadInput(f'categories[{i}] must be {{"id", "name"}}', "content")
        cats[c["id"]] = c["name"]
    by_image: dict = {}
    multi = False
    for i, a in enumerate(doc["annotations"]):
        if not isinstance(a, dict) or "image_id" not in a or ("bbox" not in a and "segmentation" not in a):
            raise BadInput(f"annotations[{i}] must have image_id and bbox or segmentation", "content")
        attrs = a.get("attributes") or {}
        labels = attrs.get("labels")
        if labels is None:
            if a.get("category_id") not in cats:
                raise BadInput(
                    f"annotations[{i}]: category_id {a.get('category_id')!r} is not in categories", "content"
                )
            labels = [cats[a["category_id"]]]
        multi = multi or len(labels) > 1
        by_image.setdefault(a["image_id"], []).append((a, attrs, labels))
    ocr = any("text" in (a.get("attributes") or {}) for a in doc["annotations"] if isinstance(a, dict))
    q = (spec or builtin("ocr" if ocr else "object-detection", multi=multi)).questions[0]
    items = []
    for i, img in enumerate(doc["images"]):
        if not isinstance(img, dict) or "id" not in img or "file_name" not in img:
            raise BadInput(f"images[{i}] must have id and file_name", "content")
        shapes = []
        for a, attrs, labels in by_image.get(img["id"], []):
            seg = a.get("segmentation")
            if isinstance(seg, list) and seg and isinstance(seg[0], list) and len(seg[0]) >= 6:
                flat = seg[0]
                points = [[flat[j], flat[j + 1]] for j in range(0, len(flat) - 1, 2)]
            else:
                x, y, w, h = a["bbox"]
                points = [[x, y], [_num(x + w), y], [_num(x + w), _num(y + h)], [x, _num(y + h)]]
            lab: dict = {}
            if q.text_title:
                lab[q.text_title] = attrs.get("text", "")
            if labels:
                lab[q.result_key] = labels if q.multi else labels[0]
            shapes.append(
                {
                    "id": attrs.get("id") or f"coco-{a.get('id')}",
                    "type": "image/polygon",
                    "value": points,
                    "labels": lab,
                }
            )
        results = [
            {
                "questionId": q.id,
                "data": shapes,
                "rotation": img.get("rotation", 0),
                "markTitle": q.title,
                "width": img.get("width") or 1,
                "type": "image",
                "height": img.get("height") or 1,
            }
        ]
        items.append(NewItem({"source": img["file_name"]}, {"label": results}))
    if not items:
        raise BadInput("the COCO file has no images to import", "content")
    return Imported(
        items=items,
        template="ocr" if ocr else "object-detection",
        labels=[cats[k] for k in sorted(cats)],
        multi=multi,
        stages=["label"],
    )
