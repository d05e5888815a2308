"""Label Studio JSON: a list of tasks ``{"id", "data", "annotations", "predictions"}``.

Each stage's answer is one annotation (``"stage"`` says which; a skipped item is a cancelled
annotation), a pre-label is a prediction. Region names follow the template: ``from_name`` is
the question's title, ``to_name`` the content key it marks. :func:`config` writes the matching
labeling config (XML), which Label Studio and its converter need to read the file.

Label Studio stores geometry in percent of the image; pixels come back as the shortest decimal
that gives the same percent, so coordinates come back as they were written. Relation endpoints' canvas
positions (``x``/``y``) and a segment list's ``duration`` have no place in Label Studio and come
back as 0.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any
from xml.sax.saxutils import quoteattr

from pai_lab.errors import BadInput
from pai_lab.labeling import flow as fl
from pai_lab.labeling.formats import ExportContext, Imported, chunked, is_rect, parse_json, zip_results
from pai_lab.labeling.intake import NewItem
from pai_lab.labeling.templates import TemplateSpec

NAME = "label-studio"
# an annotation's "stage" is the answer column it came from (label, check, verify)
STAGE_OF_COLUMN = {column: stage for stage, column in fl.STAGE_COLUMN.items()}
TAG = {"text": "Text", "image": "Image", "video": "Video", "audio": "Audio"}


def fits(ctx: ExportContext) -> None:
    return None


def config(spec: TemplateSpec, labels: list[str]) -> str:
    """The Label Studio labeling config for a template."""
    out = ["<View>"]
    for c in spec.contents:
        out.append(f"  <{TAG[c.type]} name={quoteattr(c.key)} value={quoteattr('$' + c.key)}/>")
    for q in spec.questions:
        names = q.labels if q.labels is not None else labels
        opts = "".join(f"<Label value={quoteattr(n)}/>" for n in names)
        choice = "".join(f"<Choice value={quoteattr(n)}/>" for n in names)
        to = quoteattr(q.bind or spec.contents[0].key)
        title = quoteattr(q.title)
        if q.type in ("single", "multi"):
            mode = "multiple" if q.type == "multi" else "single"
            out.append(f"  <Choices name={title} toName={to} choice={quoteattr(mode)}>{choice}</Choices>")
        elif q.type == "text":
            out.append(f"  <TextArea name={title} toName={to}/>")
        elif q.type == "boxes":
            out.append(f"  <RectangleLabels name={title} toName={to}>{opts}</RectangleLabels>")
            out.append(f"  <PolygonLabels name={quoteattr(q.title + '-polygon')} toName={to}>{opts}</PolygonLabels>")
            if q.text_title:
                out.append(f'  <TextArea name={quoteattr(q.text_title)} toName={to} perRegion="true"/>')
        elif q.type in ("spans", "segments"):
            out.append(f"  <Labels name={title} toName={to}>{opts}</Labels>")
            if q.text_title:
                out.append(f'  <TextArea name={quoteattr(q.text_title)} toName={to} perRegion="true"/>')
        elif q.type == "relations":
            out.append("  <Relations>" + "".join(f"<Relation value={quoteattr(n)}/>" for n in names) + "</Relations>")
    out.append("</View>")
    return "\n".join(out)


def _as_list(v) -> list:
    return list(v) if isinstance(v, list) else ([] if v is None else [v])


def to_regions(spec: TemplateSpec, results: list) -> list[dict]:
    """iTAG results -> Label Studio result regions."""
    out: list[dict] = []
    for q, el in zip_results(spec, results):
        to = q.bind or spec.contents[0].key
        base = {"from_name": q.title, "to_name": to}
        if q.type in ("single", "multi"):
            out.append({"id": f"q{q.id}", **base, "type": "choices", "value": {"choices": _as_list(el["data"])}})
        elif q.type == "text":
            out.append({"id": f"q{q.id}", **base, "type": "textarea", "value": {"text": [el["data"]]}})
        elif q.type == "boxes":
            w, h = el["width"], el["height"]
            for s in el["data"]:
                pts = s["value"]
                labels = _as_list(s["labels"].get(q.result_key))
                common = {"id": s["id"], "original_width": w, "original_height": h, "image_rotation": el["rotation"]}
                if is_rect(pts):
                    (x1, y1), _, (x2, y2), _ = pts
                    geom = {
                        "x": x1 * 100 / w,
                        "y": y1 * 100 / h,
                        "width": (x2 - x1) * 100 / w,
                        "height": (y2 - y1) * 100 / h,
                        "rotation": 0,
                    }
                    kind = "rectanglelabels"
                    out.append({**common, **base, "type": kind, "value": {**geom, kind: labels}})
                else:
                    geom = {"points": [[x * 100 / w, y * 100 / h] for x, y in pts], "closed": True}
                    kind = "polygonlabels"
                    out.append(
                        {
                            **common,
                            "from_name": q.title + "-polygon",
                            "to_name": to,
                            "type": kind,
                            "value": {**geom, kind: labels},
                        }
                    )
                if q.text_title and q.text_title in s["labels"]:
                    out.append(
                        {
                            **common,
                            "from_name": q.text_title,
                            "to_name": to,
                            "type": "textarea",
                            "value": {**geom, "text": [s["labels"][q.text_title]]},
                        }
                    )
        elif q.type == "spans":
            for o in el["objects"]:
                out.append(
                    {
                        "id": f"e{o['start']}-{o['end']}",
                        **base,
                        "type": "labels",
                        "value": {
                            "start": o["start"],
                            "end": o["end"] + 1,
                            "text": o["text"],
                            "labels": _as_list(o["result"][q.result_key]),
                        },
                    }
                )
        elif q.type == "relations":
            for r in el:
                out.append(
                    {
                        "from_id": f"e{r['from']['start']}-{r['from']['end']}",
                        "to_id": f"e{r['to']['start']}-{r['to']['end']}",
                        "type": "relation",
                        "direction": "right",
                        "labels": _as_list(r["result"][q.result_key]),
                    }
                )
        elif q.type == "segments":
            for o in el["objects"]:
                res = o["result"]
                if q.result_key in res:
                    out.append(
                        {
                            "id": o["id"],
                            **base,
                            "type": "labels",
                            "value": {"start": o["start"], "end": o["end"], "labels": _as_list(res[q.result_key])},
                        }
                    )
                if q.text_title and q.text_title in res:
                    out.append(
                        {
                            "id": o["id"],
                            "from_name": q.text_title,
                            "to_name": to,
                            "type": "textarea",
                            "value": {"start": o["start"], "end": o["end"], "text": [res[q.text_title]]},
                        }
                    )
    return out


def tasks(ctx: ExportContext) -> Iterator[str]:
    yield "["
    first = True
    for r in ctx.rows():
        anns = []
        for n, stage in enumerate(fl.STAGES, 1):
            column = fl.STAGE_COLUMN[stage]
            text, origin = getattr(r, column), getattr(r, fl.ORIGIN_COLUMN[stage])
            if text is not None:
                # each region says whether it is the suggestion kept, changed, or drawn by hand
                regions = [
                    {**region, "origin": origin or "manual"} for region in to_regions(ctx.spec, json.loads(text))
                ]
                anns.append(
                    {
                        "id": r.seq * 3 + n,
                        "result": regions,
                        "was_cancelled": False,
                        "ground_truth": stage == "accept",
                        "stage": column,
                    }
                )
            elif stage == "label" and r.skipped is not None:
                anns.append(
                    {
                        "id": r.seq * 3 + n,
                        "result": [],
                        "was_cancelled": True,
                        "ground_truth": False,
                        "stage": column,
                        "skip_reason": r.skipped,
                    }
                )
        task = {"id": r.seq + 1, "data": json.loads(r.data), "annotations": anns, "predictions": []}
        if r.prelabel is not None:
            task["predictions"].append(
                {
                    "model_version": r.prelabel_source or "",
                    "score": r.prelabel_score,
                    "result": to_regions(ctx.spec, json.loads(r.prelabel)),
                }
            )
        yield ("\n" if first else ",\n") + json.dumps(task, ensure_ascii=False)
        first = False
    yield "\n]\n"


def export(ctx: ExportContext) -> Iterator[str]:
    return chunked(tasks(ctx))


# ---------------------------------------------------------------------------- import


def _num(v):
    return int(v) if isinstance(v, float) and v.is_integer() else v


def _recover(approx: float, ok) -> float | int:
    """The shortest decimal near ``approx`` that exports to the same percent (``ok``), so pixel
    values written by people come back as they were, not with a last-bit error."""
    for digits in range(0, 16):
        r = round(approx, digits)
        if ok(r):
            return _num(r)
    return _num(approx)


def _pixels(pct: float, size: int | float) -> float | int:
    return _recover(pct * size / 100, lambda r: r * 100 / size == pct)


def from_regions(spec: TemplateSpec, regions: list[dict], data: dict, where: str) -> list:
    """Label Studio result regions -> iTAG results, in template question order."""
    # keyed by what the export says (from_name, id), which may be missing
    by_name: dict[str | None, list[dict]] = {}
    relations = []
    for r in regions:
        if not isinstance(r, dict):
            raise BadInput(f"{where}: each result must be an object", "content")
        if r.get("type") == "relation":
            relations.append(r)
        else:
            by_name.setdefault(r.get("from_name"), []).append(r)
    results: list[Any] = []
    spans_by_id: dict[str | None, dict] = {}
    for q in spec.questions:
        regs = by_name.get(q.title, [])
        if q.type in ("single", "multi", "text"):
            if not regs:
                continue
            v = regs[0].get("value") or {}
            if q.type == "text":
                data_v = (v.get("text") or [""])[0]
            else:
                choices = v.get("choices") or []
                data_v = choices if q.type == "multi" else (choices[0] if choices else "")
            results.append(
                {
                    "questionId": q.id,
                    "data": data_v,
                    "markTitle": q.title,
                    "type": "survey/multivalue" if q.type == "multi" else "survey/value",
                }
            )
        elif q.type == "boxes":
            regs = regs + by_name.get(q.title + "-polygon", [])
            texts = {r.get("id"): (r.get("value") or {}).get("text", [""])[0] for r in by_name.get(q.text_title, [])}
            if not regs and not texts:
                continue
            shapes, w, h, rot = [], None, None, 0
            for r in regs:
                v = r.get("value") or {}
                w, h = r.get("original_width"), r.get("original_height")
                rot = r.get("image_rotation", 0)
                if not w or not h:
                    raise BadInput(f"{where}: region {r.get('id')} has no original_width/original_height", "content")
                if r.get("type") == "rectanglelabels":
                    x1, y1 = _pixels(v["x"], w), _pixels(v["y"], h)
                    x2 = _recover(
                        (v["x"] + v["width"]) * w / 100, lambda r, x1=x1, w=w, v=v: (r - x1) * 100 / w == v["width"]
                    )
                    y2 = _recover(
                        (v["y"] + v["height"]) * h / 100, lambda r, y1=y1, h=h, v=v: (r - y1) * 100 / h == v["height"]
                    )
                    pts = [[x1, y1], [x2, y1], [x2, y2], [x1, y2]]
                    labels = v.get("rectanglelabels") or []
                else:
                    pts = [[_pixels(x, w), _pixels(y, h)] for x, y in v.get("points") or []]
                    labels = v.get("polygonlabels") or []
                lab: dict = {}
                if q.text_title and r.get("id") in texts:
                    lab[q.text_title] = texts[r.get("id")]
                if labels:
                    lab[q.result_key] = labels if q.multi else labels[0]
                shapes.append(
                    {
                        "id": r.get("id"),
                        "type": "image/polygon",
                        "value": [[_num(x), _num(y)] for x, y in pts],
                        "labels": lab,
                    }
                )
            results.append(
                {
                    "questionId": q.id,
                    "data": shapes,
                    "rotation": rot,
                    "markTitle": q.title,
                    "width": w,
                    "type": "image",
                    "height": h,
                }
            )
        elif q.type == "spans":
            objects = []
            text = data.get(q.bind or "source") if isinstance(data, dict) else None
            for r in regs:
                v = r.get("value") or {}
                labels = v.get("labels") or []
                start, end = v.get("start"), v.get("end")
                obj = {
                    "result": {q.result_key: labels if q.multi else (labels[0] if labels else "")},
                    "color": None,
                    "id": None,
                    "text": v.get("text", text[start:end] if isinstance(text, str) else None),
                    "start": start,
                    "end": end - 1 if isinstance(end, int) else end,
                }
                spans_by_id[r.get("id")] = obj
                objects.append(obj)
            if objects or regs:
                results.append({"objects": objects, "empty": False})
        elif q.type == "relations":
            out = []
            for r in relations:
                a, b = spans_by_id.get(r.get("from_id")), spans_by_id.get(r.get("to_id"))
                if a is None or b is None:
                    raise BadInput(
                        f"{where}: relation between unknown regions {r.get('from_id')} -> {r.get('to_id')}", "content"
                    )
                labels = r.get("labels") or []
                out.append(
                    {
                        "result": {q.result_key: labels if q.multi else (labels[0] if labels else "")},
                        "from": {"x": 0, "y": 0, "start": a["start"], "end": a["end"], "text": a["text"]},
                        "to": {"x": 0, "y": 0, "start": b["start"], "end": b["end"], "text": b["text"]},
                    }
                )
            if relations or out:
                results.append(out)
        elif q.type == "segments":
            order: dict[str | None, dict] = {}
            for r in regs + by_name.get(q.text_title, []):
                v = r.get("value") or {}
                seg = order.setdefault(
                    r.get("id"),
                    {"result": {}, "color": None, "id": r.get("id"), "start": v.get("start"), "end": v.get("end")},
                )
                if r.get("from_name") == q.title:
                    labels = v.get("labels") or []
                    seg["result"][q.result_key] = labels if q.multi else (labels[0] if labels else "")
                else:
                    seg["result"][q.text_title] = (v.get("text") or [""])[0]
            for seg in order.values():  # transcript first, as iTAG writes it
                if q.text_title in seg["result"]:
                    seg["result"] = {
                        q.text_title: seg["result"][q.text_title],
                        **{k: v for k, v in seg["result"].items() if k != q.text_title},
                    }
            if order:
                results.append({"duration": 0, "objects": list(order.values()), "empty": False})
    return results


def parse(text: str, spec: TemplateSpec | None) -> Imported:
    if spec is None:
        raise BadInput("a Label Studio import needs the template (template=<id>)", "template")
    doc = parse_json(text, "Label Studio")
    if isinstance(doc, dict):
        doc = [doc]
    if not isinstance(doc, list):
        raise BadInput("a Label Studio export is a JSON list of tasks", "content")
    items, stages, labels, relation_labels = [], set(), {}, {}
    for n, task in enumerate(doc, 1):
        where = f"task {n}"
        if not isinstance(task, dict) or not isinstance(task.get("data"), dict):
            raise BadInput(f'{where}: each task must be an object with a "data" object', "content")
        answers, skipped, prelabel = {}, None, None
        for ann in task.get("annotations") or []:
            stage = STAGE_OF_COLUMN.get(ann.get("stage") or "label")
            if stage is None:
                raise BadInput(f"{where}: unknown annotation stage {ann.get('stage')!r}", "content")
            if ann.get("was_cancelled"):
                skipped = ann.get("skip_reason") or "cancelled in Label Studio"
                continue
            if stage in answers:  # several annotators: the first is kept, as Label Studio's own exports do
                continue
            answers[stage] = from_regions(spec, ann.get("result") or [], task["data"], where)
            stages.add(stage)
        preds = task.get("predictions") or []
        if preds:
            prelabel = from_regions(spec, preds[0].get("result") or [], task["data"], where)
        for r in (task.get("annotations") or []) + preds:
            for reg in r.get("result") or []:
                if reg.get("type") == "relation":
                    relation_labels.update(dict.fromkeys(reg.get("labels") or []))
                    continue
                for key in ("choices", "labels", "rectanglelabels", "polygonlabels"):
                    labels.update(dict.fromkeys((reg.get("value") or {}).get(key) or []))
        item = NewItem(task["data"], answers, skipped=skipped, prelabel=prelabel)
        items.append(item)
    if not items:
        raise BadInput("the file has no tasks to import", "content")
    return Imported(
        items=items,
        labels=list(labels),
        relation_labels=list(relation_labels),
        stages=[s for s in ("label", "check", "accept") if s in stages],
    )
