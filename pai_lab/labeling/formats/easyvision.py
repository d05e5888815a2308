"""EasyVision annotation CSV (the PAI labeling format the ``convert`` command reads)::

    #数据ID,原始数据,融合答案
    1,"{""url"":""a.jpg""}","{""option"":""cat""}"

The answer column depends on the template: classification ``{"option": label}`` (a list for
multi-label); detection a list of ``{"text": "{\\"class*\\": \\"label\\"}", "coord": [8 strings]}``
with coordinates written with two decimals; OCR the end-to-end text shape
``[[{"text": "{\\"text\\": ..., \\"direction\\": \\"底部朝下\\", \\"class*\\": ...}", "coord": [...]}],
{"option": "底部朝下"}]``. Items without a final answer are left out.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator

from pai_lab.errors import BadInput
from pai_lab.labeling.formats import ExportContext, chunked, shape_labels, zip_results

NAME = "easyvision"
HEADER = "#数据ID,原始数据,融合答案\n"
UPRIGHT = "底部朝下"


def fits(ctx: ExportContext) -> None:
    kinds = {q.type for q in ctx.spec.questions}
    if ctx.spec.contents[0].type != "image" or not (kinds & {"single", "multi", "boxes"}):
        raise BadInput(
            f"the EasyVision CSV holds classification, detection and OCR answers; the {ctx.template} "
            "template labels no image with them",
            "format",
        )


def _compact(obj) -> str:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


def answer(ctx: ExportContext, results: list):
    for q, el in zip_results(ctx.spec, results):
        if q.type in ("single", "multi"):
            return {"option": el["data"]}
        if q.type == "boxes":
            objects = []
            for s in el["data"]:
                labels = shape_labels(q, s["labels"])
                coord = [f"{c:.2f}" for p in s["value"] for c in p]
                if q.text_title:
                    inner = {
                        "text": s["labels"].get(q.text_title, ""),
                        "direction": UPRIGHT,
                        "class*": labels[0] if labels else "text",
                    }
                else:
                    inner = {"class*": labels[0] if labels else ""}
                objects.append({"text": json.dumps(inner, ensure_ascii=False), "coord": coord})
            return [objects, {"option": UPRIGHT}] if q.text_title else objects
    return None


def rows(ctx: ExportContext) -> Iterator[str]:
    yield HEADER
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    for r in ctx.rows():
        if r.final is None:
            continue
        data = json.loads(r.data)
        value = answer(ctx, json.loads(r.final))
        if value is None:
            continue
        writer.writerow([r.seq + 1, _compact({"url": data.get(ctx.spec.contents[0].key)}), _compact(value)])
        yield buf.getvalue()
        buf.seek(0)
        buf.truncate()


def export(ctx: ExportContext) -> Iterator[str]:
    return chunked(rows(ctx))
