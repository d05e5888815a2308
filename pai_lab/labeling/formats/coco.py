"""COCO object detection JSON: ``images``, ``annotations``, ``categories``.

Each shape of a box question becomes an annotation with its ``bbox`` ([x, y, width, height]),
its polygon as ``segmentation`` (vertices in the order drawn, so the shape comes back exactly),
its ``area`` and, under ``attributes``, the shape id, every label and an OCR transcript.
Category ids follow the task's label order from 1. Images are the items with a final answer;
the file is written in two passes over the store, so memory stays flat.
"""

from __future__ import annotations

import json
from typing import Iterator

from pai_lab.errors import BadInput
from pai_lab.labeling.formats import (ExportContext, Imported, bbox, chunked, image_elements, parse_json,
                                      shape_labels)
from pai_lab.labeling.service import NewItem

NAME = "coco"


def fits(ctx: ExportContext) -> None:
    if not ctx.questions("boxes"):
        raise BadInput(f"COCO holds boxes and polygons; the {ctx.template} template has none. Use itag or "
                       "label-studio", "format")


def _area(points: list) -> float:
    n = len(points)
    return abs(sum(points[i][0] * points[(i + 1) % n][1] - points[(i + 1) % n][0] * points[i][1]
                   for i in range(n))) / 2


def _num(v: float) -> float | int:
    return int(v) if isinstance(v, float) and v.is_integer() else v


def _json(obj) -> str:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


def document(ctx: ExportContext) -> Iterator[str]:
    categories = {name: i for i, name in enumerate(ctx.labels, 1)}
    yield '{"info":' + _json({"description": f"labeling task {ctx.name}", "task_id": ctx.task_id}) + ","
    yield '"categories":' + _json([{"id": i, "name": n, "supercategory": ""} for n, i in categories.items()]) + ","
    yield '"images":['
    first = True
    for r in ctx.rows():
        final = r.final
        if final is None:
            continue
        data = json.loads(r.data)
        els = image_elements(ctx, json.loads(final))
        q, el = els[0] if els else (ctx.questions("boxes")[0][1], {"width": 0, "height": 0, "rotation": 0})
        image = {"id": r.seq + 1, "file_name": data.get(q.bind or "source"), "width": el["width"],
                 "height": el["height"]}
        if el.get("rotation"):
            image["rotation"] = el["rotation"]
        yield ("" if first else ",") + _json(image)
        first = False
    yield '],"annotations":['
    first = True
    ann_id = 0
    for r in ctx.rows():
        final = r.final
        if final is None:
            continue
        for q, el in image_elements(ctx, json.loads(final)):
            for s in el["data"]:
                labels = shape_labels(q, s["labels"])
                ann_id += 1
                x1, y1, x2, y2 = bbox(s["value"])
                attributes = {"id": s["id"], "labels": labels}
                if q.text_title and q.text_title in s["labels"]:
                    attributes["text"] = s["labels"][q.text_title]
                ann = {"id": ann_id, "image_id": r.seq + 1, "category_id": categories.get(labels[0], 0) if labels else 0,
                       "bbox": [_num(x1), _num(y1), _num(x2 - x1), _num(y2 - y1)],
                       "area": _num(_area(s["value"])),
                       "segmentation": [[c for p in s["value"] for c in p]], "iscrowd": 0,
                       "attributes": attributes}
                yield ("" if first else ",") + _json(ann)
                first = False
    yield "]}\n"


def export(ctx: ExportContext) -> Iterator[str]:
    return chunked(document(ctx))


def parse(text: str, spec) -> Imported:
    """COCO detection JSON -> one item per image, its annotations as rectangles or polygons."""
    from pai_lab.labeling.templates import builtin

    doc = parse_json(text, "COCO")
    if not isinstance(doc, dict) or not isinstance(doc.get("images"), list) or not isinstance(
            doc.get("annotations"), list):
        raise BadInput("a COCO file is an object with images, annotations and categories lists", "content")
    cats = {}
    for i, c in enumerate(doc.get("categories") or []):
        if not isinstance(c, dict) or "id" not in c or not isinstance(c.get("name"), str):
            raise BadInput(f"categories[{i}] must be {{\"id\", \"name\"}}", "content")
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
                raise BadInput(f"annotations[{i}]: category_id {a.get('category_id')!r} is not in categories",
                               "content")
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
            shapes.append({"id": attrs.get("id") or f"coco-{a.get('id')}", "type": "image/polygon",
                           "value": points, "labels": lab})
        results = [{"questionId": q.id, "data": shapes, "rotation": img.get("rotation", 0), "markTitle": q.title,
                    "width": img.get("width") or 1, "type": "image", "height": img.get("height") or 1}]
        items.append(NewItem({"source": img["file_name"]}, {"label": results}))
    if not items:
        raise BadInput("the COCO file has no images to import", "content")
    return Imported(items=items, template="ocr" if ocr else "object-detection",
                    labels=[cats[k] for k in sorted(cats)], multi=multi, stages=["label"])
