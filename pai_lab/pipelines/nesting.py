"""Pipelines as steps (PAI's composite components): a step whose operator is a pipeline, saved or not,
is replaced by that pipeline's steps before the graph is checked, so the driver only ever runs leaf
steps and a nested run is checked, cached and retried like any other.

A sub-step is named ``<step>-<sub-step>`` (PAI names it ``<step>.<sub-step>``; a step name here has no
dots). What the sub-pipeline reads from its own inputs comes from the outer step's arguments (or the
sub-pipeline's defaults); what the outer pipeline reads from the step's outputs comes from the sub-step
that makes them; its first sub-steps wait on what the step waited on, and whatever waited on the step
waits on its last sub-steps.
"""

from __future__ import annotations

import re
from typing import Any

from pai_lab.pipelines.manifest_shapes import normalize, read_variables
from pai_lab.pipelines.types import NAME_PATTERN, PipelineError

MAX_DEPTH = 5  # pipelines inside pipelines inside ...: deeper than this is refused
_INPUT_REF = re.compile(r"^\{\{\s*inputs\.(parameters|artifacts)\.([A-Za-z][\w-]*)\s*\}\}$")
_STEP_REF = re.compile(
    r"^\{\{\s*pipelines\.([A-Za-z][\w-]*)\.outputs\.(parameters|artifacts)\.([A-Za-z][\w-]*)\s*\}\}$"
)


def _nested(raw: Any) -> dict | None:
    """The pipeline a raw step runs, when its operator is one; None for a leaf (or a shape check() refuses)."""
    if not isinstance(raw, dict) or not isinstance(raw.get("spec"), dict):
        return None
    operator = raw["spec"].get("operator")
    if isinstance(operator, dict) and isinstance(operator.get("spec"), dict) and "pipelines" in operator["spec"]:
        return operator
    return None


def _arguments(raw: dict) -> dict[str, dict]:
    args = raw["spec"].get("arguments")
    found: dict[str, dict] = {}
    for kind in ("parameters", "artifacts"):
        items = args.get(kind) if isinstance(args, dict) else None
        for item in items if isinstance(items, list) else []:
            if isinstance(item, dict) and isinstance(item.get("name"), str):
                found[item["name"]] = item
    return found


def _each_argument(raw: dict):
    args = raw.get("spec", {}).get("arguments") if isinstance(raw.get("spec"), dict) else None
    for kind in ("parameters", "artifacts"):
        items = args.get(kind) if isinstance(args, dict) else None
        for item in items if isinstance(items, list) else []:
            if isinstance(item, dict):
                yield item


def _name(raw: Any) -> str | None:
    meta = raw.get("metadata") if isinstance(raw, dict) else None
    name = meta.get("name") if isinstance(meta, dict) else None
    return name if isinstance(name, str) else None


def _expand_step(raw: dict, operator: dict, depth: int) -> tuple[list[dict], dict[tuple[str, str], str]]:
    """The sub-steps standing for one step, and where each of its outputs now comes from."""
    step = _name(raw) or ""
    where = f"steps.{step}.operator"
    if depth >= MAX_DEPTH:
        raise PipelineError(f"step {step!r}: pipelines nest more than {MAX_DEPTH} deep", where)
    sub = expand(normalize(operator)["spec"], depth + 1, where)
    declared = read_variables(sub.get("inputs"), "inputs", f"{where}.inputs")
    given = _arguments(raw)
    outer_deps = raw["spec"].get("dependencies")
    outer_deps = [d for d in outer_deps if isinstance(d, str)] if isinstance(outer_deps, list) else []
    prefix = f"{step}-"
    steps = []
    for i, inner in enumerate(sub.get("pipelines") or []):
        if not isinstance(inner, dict) or not isinstance(inner.get("spec"), dict) or _name(inner) is None:
            raise PipelineError(f"step {step!r}: step {i} of its pipeline has no name or spec", where)
        inner_name = _name(inner) or ""
        name = prefix + inner_name
        if not NAME_PATTERN.match(name):
            raise PipelineError(
                f"step {step!r}: its sub-step {inner_name!r} would be named {name!r}, longer than 64 "
                "characters or not a name; shorten the step's name",
                f"steps.{step}.name",
            )
        copy = {**inner, "metadata": {**inner["metadata"], "name": name}, "spec": dict(inner["spec"])}
        kinds = {}
        for kind in ("parameters", "artifacts"):
            items = (inner["spec"].get("arguments") or {}).get(kind) or []
            kinds[kind] = [_rewire(dict(item), step, prefix, given, declared) for item in items]
        copy["spec"]["arguments"] = kinds
        deps = [prefix + d for d in inner["spec"].get("dependencies") or [] if isinstance(d, str)]
        copy["spec"]["dependencies"] = deps or list(outer_deps)  # the first sub-steps wait as the step did
        steps.append(copy)
    outputs = {}
    for kind in ("parameters", "artifacts"):
        for out in (sub.get("outputs") or {}).get(kind) or []:
            ref = out.get("from") if isinstance(out, dict) else None
            m = _STEP_REF.match(ref) if isinstance(ref, str) else None
            if m:
                outputs[(kind, out["name"])] = "{{pipelines.%s.outputs.%s.%s}}" % (prefix + m[1], m[2], m[3])
    return steps, outputs


def _rewire(item: dict, step: str, prefix: str, given: dict[str, dict], declared) -> dict:
    ref = item.get("from")
    if not isinstance(ref, str):
        return item
    m = _STEP_REF.match(ref)
    if m:
        item["from"] = "{{pipelines.%s.outputs.%s.%s}}" % (prefix + m[1], m[2], m[3])
        return item
    m = _INPUT_REF.match(ref)
    if not m:
        return item
    outer = given.get(m[2])
    del item["from"]
    if outer is not None:  # what the outer step was given: a value, a pipeline input, another step's output
        item.update({k: v for k, v in outer.items() if k in ("from", "value")})
        return item
    var = next((v for v in declared if v.name == m[2]), None)
    default = getattr(var, "default", None) if var is not None and var.kind == "parameters" else None
    if default is None and var is not None and var.kind == "artifacts":
        default = var.value
    if default is None:
        raise PipelineError(
            f"step {step!r}: required input {m[2]!r} of its pipeline is not connected; give it a value, "
            "a pipeline input or another step's output",
            f"steps.{step}.{m[2]}",
        )
    item["value"] = default
    return item


def expand(spec: dict, depth: int = 0, where: str = "spec") -> dict:
    """``spec`` (a pipeline's) with every step that runs a pipeline replaced by that pipeline's steps."""
    raw_steps = spec.get("pipelines")
    if not isinstance(raw_steps, list) or not any(_nested(raw) for raw in raw_steps):
        return spec
    flat: list = []
    members: dict[str, list[str]] = {}
    made: dict[str, dict[tuple[str, str], str]] = {}
    for raw in raw_steps:
        operator = _nested(raw)
        if operator is None:
            flat.append(raw)
            continue
        steps, outputs = _expand_step(raw, operator, depth)
        inside = {d for s in steps for d in s["spec"]["dependencies"]}
        # what waited on the step waits on its last sub-steps (those no other sub-step waits on)
        members[_name(raw) or ""] = [s["metadata"]["name"] for s in steps if s["metadata"]["name"] not in inside]
        made[_name(raw) or ""] = outputs
        flat += steps

    def rewired(item: dict, at: str) -> dict:
        ref = item.get("from")
        m = _STEP_REF.match(ref) if isinstance(ref, str) else None
        if not m or m[1] not in made:
            return item
        source = made[m[1]].get((m[2], m[3]))
        if source is None:
            raise PipelineError(
                f"{at}: takes {m[3]!r} of step {m[1]!r}, whose pipeline has no such {m[2][:-1]} output", at
            )
        return {**item, "from": source}

    out = []
    for raw in flat:
        if isinstance(raw, dict) and isinstance(raw.get("spec"), dict):  # sub-steps too: they took outer arguments
            body = dict(raw["spec"])
            args = body.get("arguments")
            if isinstance(args, dict):
                body["arguments"] = {
                    kind: [
                        rewired(i, f"steps.{_name(raw)}.{i.get('name')}") if isinstance(i, dict) else i for i in items
                    ]
                    if isinstance(items, list)
                    else items
                    for kind, items in args.items()
                }
            deps = body.get("dependencies")
            if isinstance(deps, list):
                body["dependencies"] = [m for d in deps for m in (members.get(d, [d]) if isinstance(d, str) else [d])]
            raw = {**raw, "spec": body}
        out.append(raw)
    outputs = spec.get("outputs")
    if isinstance(outputs, dict):
        outputs = {
            kind: [rewired(o, f"outputs.{o.get('name')}") if isinstance(o, dict) else o for o in items]
            if isinstance(items, list)
            else items
            for kind, items in outputs.items()
        }
    return {**spec, "pipelines": out, "outputs": outputs}
