"""The manifest (PAI's ``apiVersion: core/v1`` document) and the rules every pipeline must meet.

This module is the one owner of those rules: the SDK checks a pipeline with them when it is built,
the server checks the manifest it receives with them again, so a notebook and a raw REST call get
the same answer. Every refusal is a :class:`PipelineError` naming the step and the input. The shapes
of one document (an operator's spec, its variables, a leaf operator made a pipeline) are
:mod:`pai_lab.pipelines.manifest_shapes`.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import Any

import yaml

from pai_lab.pipelines.manifest_shapes import (
    MAX_VARIABLES,
    as_list,
    as_mapping,
    check_operator,
    normalize,
    operator_kind,
    read_variables,
)
from pai_lab.pipelines.nesting import expand
from pai_lab.pipelines.types import (
    NAME_PATTERN,
    NAME_RULE,
    ParameterType,
    PipelineError,
    PipelineParameter,
    VariablesSpec,
)

MAX_STEPS = 1000  # a run's node table and driver stay small; a bigger DAG is a saved sub-pipeline's job

_INPUT_REF = re.compile(r"^\{\{\s*inputs\.(parameters|artifacts)\.([A-Za-z][\w-]*)\s*\}\}$")
_STEP_REF = re.compile(
    r"^\{\{\s*pipelines\.([A-Za-z][\w-]*)\.outputs\.(parameters|artifacts)\.([A-Za-z][\w-]*)\s*\}\}$"
)


@dataclass
class Binding:
    """Where a step's input comes from: a literal, a pipeline input, or another step's output."""

    source: str  # "value" | "input" | "step"
    value: Any = None
    step: str | None = None
    name: str | None = None


@dataclass
class StepPlan:
    name: str
    operator: dict  # the leaf operator's manifest
    inputs: VariablesSpec
    outputs: VariablesSpec
    parameters: dict[str, Binding] = field(default_factory=dict)
    artifacts: dict[str, Binding] = field(default_factory=dict)
    depends: list[str] = field(default_factory=list)

    @property
    def kind(self) -> str:
        return operator_kind(self.operator)


@dataclass
class Graph:
    """A checked pipeline: its free inputs, its steps in a topological order, its outputs."""

    manifest: dict
    inputs: VariablesSpec
    steps: dict[str, StepPlan]
    outputs: dict[str, tuple[str, Binding]]  # output name -> (kind, the step output it takes)


# ------------------------------------------------------------------ (de)serialising


def dumps(manifest: dict, fmt: str = "yaml") -> str:
    if fmt == "json":
        return json.dumps(manifest, indent=1, ensure_ascii=False)
    return yaml.safe_dump(manifest, sort_keys=False, allow_unicode=True)


def loads(text: str) -> dict:
    """A manifest from YAML or JSON text (JSON is YAML)."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise PipelineError(f"manifest: not YAML or JSON: {exc}", "manifest") from None
    if not isinstance(data, dict):
        raise PipelineError("manifest: expected a mapping with apiVersion, metadata and spec", "manifest")
    return data


def code_digest(operator: dict) -> str:
    """What identifies an operator's behaviour: its manifest, code and pickle included (for the cache)."""
    return hashlib.sha256(json.dumps(operator, sort_keys=True, default=str).encode()).hexdigest()


# ------------------------------------------------------------------ checking


def _binding(raw: Any, where: str) -> Binding:
    if not isinstance(raw, dict) or "name" not in raw:
        raise PipelineError(f"{where}: expected {{name, value}} or {{name, from}}", where)
    if "from" in raw:
        ref = raw["from"]
        m = _INPUT_REF.match(ref) if isinstance(ref, str) else None
        if m:
            return Binding("input", name=m.group(2), value=m.group(1))
        m = _STEP_REF.match(ref) if isinstance(ref, str) else None
        if m:
            return Binding("step", step=m.group(1), name=m.group(3), value=m.group(2))
        raise PipelineError(
            f"{where}: reference {ref!r} is neither {{{{inputs.<parameters|artifacts>.<name>}}}} nor "
            "{{pipelines.<step>.outputs.<parameters|artifacts>.<name>}}",
            where,
        )
    return Binding("value", value=raw.get("value"))


def check(manifest: Any) -> Graph:
    """Check a pipeline manifest (or a leaf operator's) and return its graph, or raise PipelineError."""
    manifest = normalize(manifest)
    spec = expand(manifest["spec"])  # steps that run a pipeline become its steps
    inputs = read_variables(spec.get("inputs"), "inputs", "inputs")
    raw_steps = as_list(spec.get("pipelines"), "spec.pipelines", MAX_STEPS)
    if not raw_steps:
        raise PipelineError("spec.pipelines: a pipeline needs at least one step", "spec.pipelines")
    steps: dict[str, StepPlan] = {}
    for i, raw in enumerate(raw_steps):
        raw = as_mapping(raw, f"spec.pipelines[{i}]")
        meta = as_mapping(raw.get("metadata"), f"spec.pipelines[{i}].metadata")
        name = meta.get("name")
        if not isinstance(name, str) or not NAME_PATTERN.match(name):
            raise PipelineError(f"step {name!r}: the name is not allowed; use {NAME_RULE}", f"steps[{i}].name")
        if name in steps:
            raise PipelineError(f"step {name!r}: two steps have this name; rename one", f"steps.{name}.name")
        body = as_mapping(raw.get("spec"), f"steps.{name}.spec")
        operator = check_operator(body.get("operator"), f"steps.{name}.operator")
        op_spec = operator.get("spec") or {}
        plan = StepPlan(
            name,
            operator,
            read_variables(op_spec.get("inputs"), "inputs", f"steps.{name}.operator.inputs"),
            read_variables(op_spec.get("outputs"), "outputs", f"steps.{name}.operator.outputs"),
        )
        arguments = as_mapping(body.get("arguments"), f"steps.{name}.arguments")
        for kind in ("parameters", "artifacts"):
            target = plan.parameters if kind == "parameters" else plan.artifacts
            for raw_arg in as_list(arguments.get(kind), f"steps.{name}.arguments.{kind}", MAX_VARIABLES):
                arg_name = raw_arg.get("name") if isinstance(raw_arg, dict) else None
                where = f"steps.{name}.{arg_name}"
                if arg_name not in plan.inputs:
                    raise PipelineError(
                        f"step {name!r}: {arg_name!r} is not an input of its operator (inputs: "
                        f"{', '.join(v.name for v in plan.inputs) or 'none'})",
                        where,
                    )
                if plan.inputs[arg_name].kind != kind:
                    raise PipelineError(
                        f"step {name!r}: input {arg_name!r} is a {plan.inputs[arg_name].kind[:-1]}, "
                        f"given as a {kind[:-1]}",
                        where,
                    )
                target[arg_name] = _binding(raw_arg, where)
        deps = as_list(body.get("dependencies"), f"steps.{name}.dependencies", MAX_STEPS)
        plan.depends = [str(d) for d in deps]
        steps[name] = plan

    for plan in steps.values():
        _check_step_inputs(plan, inputs, steps)
    order = _topological(steps)
    outputs = _check_outputs(spec.get("outputs"), steps)
    return Graph(manifest, inputs, {n: steps[n] for n in order}, outputs)


def _check_step_inputs(plan: StepPlan, inputs: VariablesSpec, steps: dict[str, StepPlan]) -> None:
    name = plan.name
    for dep in plan.depends:
        if dep not in steps:
            raise PipelineError(
                f"step {name!r}: depends on {dep!r}, which is not a step of this pipeline", f"steps.{name}.dependencies"
            )
    for var in plan.inputs:
        bindings = plan.parameters if var.kind == "parameters" else plan.artifacts
        where = f"steps.{name}.{var.name}"
        bound = bindings.get(var.name)
        if bound is None or (bound.source == "value" and bound.value is None):
            missing = var.required if var.kind == "artifacts" else var.default is None
            if missing:
                raise PipelineError(
                    f"step {name!r}: required input {var.name!r} is not connected; give it a value, "
                    "a pipeline input or another step's output",
                    where,
                )
            continue
        if bound.source == "value":
            if var.kind == "parameters":
                coerce(var, bound.value, where)
            continue
        if bound.value != var.kind:
            raise PipelineError(
                f"step {name!r}: input {var.name!r} is a {var.kind[:-1]} but takes a {bound.value[:-1]}", where
            )
        if bound.source == "input":
            if bound.name not in inputs or inputs[bound.name].kind != var.kind:
                raise PipelineError(
                    f"step {name!r}: input {var.name!r} takes pipeline input {bound.name!r}, which "
                    "the pipeline does not declare",
                    where,
                )
            source = inputs[bound.name]
            source_text = f"pipeline input {bound.name!r}"
        else:
            if bound.step not in steps:
                raise PipelineError(
                    f"step {name!r}: input {var.name!r} takes an output of {bound.step!r}, which is "
                    "not a step of this pipeline",
                    where,
                )
            if bound.step == name:
                raise PipelineError(f"step {name!r}: input {var.name!r} takes the step's own output", where)
            producer = steps[bound.step]
            if bound.name not in producer.outputs or producer.outputs[bound.name].kind != var.kind:
                raise PipelineError(
                    f"step {name!r}: input {var.name!r} takes {bound.name!r} of step "
                    f"{bound.step!r}, which has no such {var.kind[:-1]} output",
                    where,
                )
            source = producer.outputs[bound.name]
            source_text = f"output {bound.name!r} of step {bound.step!r}"
            if bound.step not in plan.depends:
                plan.depends.append(bound.step)
        _check_types(var, source, f"step {name!r}: input {var.name!r} cannot take {source_text}", where)


def _check_types(target, source, what: str, where: str) -> None:
    if target.kind == "parameters":
        if target.typ != source.typ:
            raise PipelineError(
                f"{what}: a {source.typ.value} parameter where a {target.typ.value} one is expected", where
            )
    elif not target.metadata.compatible_with(source.metadata):
        raise PipelineError(
            f"{what}: its type {source.metadata.data_type.value} does not match "
            f"{target.metadata.data_type.value} (types must be equal, or Any)",
            where,
        )


def _topological(steps: dict[str, StepPlan]) -> list[str]:
    waiting = {n: set(p.depends) for n, p in steps.items()}
    order: list[str] = []
    ready = [n for n, deps in waiting.items() if not deps]
    while ready:
        n = ready.pop(0)
        order.append(n)
        for other, deps in waiting.items():
            if n in deps:
                deps.discard(n)
                if not deps and other not in order and other not in ready:
                    ready.append(other)
    if len(order) != len(steps):
        cycle = sorted(n for n in steps if n not in order)
        raise PipelineError(
            f"steps {', '.join(repr(c) for c in cycle)}: cycle dependency detected; a step cannot "
            "wait on itself through others",
            f"steps.{cycle[0]}.dependencies",
        )
    return order


def _check_outputs(data: Any, steps: dict[str, StepPlan]) -> dict[str, tuple[str, Binding]]:
    data = as_mapping(data, "outputs")
    outputs: dict[str, tuple[str, Binding]] = {}
    for kind in ("parameters", "artifacts"):
        for raw in as_list(data.get(kind), f"outputs.{kind}", MAX_VARIABLES):
            name = raw.get("name") if isinstance(raw, dict) else None
            where = f"outputs.{name}"
            if not isinstance(name, str) or not NAME_PATTERN.match(name):
                raise PipelineError(f"outputs: name {name!r} is not allowed; use {NAME_RULE}", "outputs")
            if name in outputs:
                raise PipelineError(f"outputs: two outputs are named {name!r}; rename one", where)
            bound = _binding(raw, where)
            if bound.source != "step" or bound.step not in steps or bound.name not in steps[bound.step].outputs:
                raise PipelineError(f"output {name!r}: must take an output of a step of this pipeline", where)
            outputs[name] = (kind, bound)
    return outputs


# ------------------------------------------------------------------ values at the boundary


def coerce(var: PipelineParameter, value: Any, where: str) -> Any:
    """A parameter's value as its type says (arguments arrive as text from a CLI, as JSON from a client)."""
    typ = var.typ
    try:
        if typ == ParameterType.String:
            return (
                value
                if isinstance(value, str)
                else json.dumps(value)
                if isinstance(value, (dict, list))
                else str(value)
            )
        if typ == ParameterType.Bool:
            if isinstance(value, bool):
                return value
            if str(value).lower() in ("true", "1", "yes"):
                return True
            if str(value).lower() in ("false", "0", "no"):
                return False
            raise ValueError
        if typ == ParameterType.Int:
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError
            return int(value)
        if typ == ParameterType.Double:
            if isinstance(value, bool):
                raise ValueError
            return float(value)
        if typ in (ParameterType.Map, ParameterType.Array):
            parsed = json.loads(value) if isinstance(value, str) else value
            if not isinstance(parsed, dict if typ == ParameterType.Map else list):
                raise ValueError
            return parsed
    except (TypeError, ValueError):
        pass
    raise PipelineError(f"{where}: {value!r} is not a {typ.value}", where)


def as_text(value: Any) -> str:
    """A parameter as the container sees it (PAI stringifies: bool/int/float with str, maps as JSON)."""
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return str(value)


def location(value: Any) -> dict:
    """An artifact value as PAI's location JSON ({"location": {...}})."""
    if isinstance(value, str):
        try:
            parsed = json.loads(value)
        except ValueError:
            parsed = None
        if isinstance(parsed, dict):
            value = parsed
        else:
            return {"location": {"uri": value}}
    if isinstance(value, dict) and isinstance(value.get("location"), dict):
        return value
    raise PipelineError(f'artifact value {value!r}: expected a path, a URL or {{"location": {{...}}}}', "value")


def check_name_or_default(name: str | None, default: str, field_name: str) -> str:
    if name is None:
        return default
    if not isinstance(name, str) or not NAME_PATTERN.match(name):
        raise PipelineError(f"{field_name}: {name!r} is not allowed; use {NAME_RULE}", field_name)
    return name
