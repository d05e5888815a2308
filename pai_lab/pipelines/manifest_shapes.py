"""The shapes inside a manifest (PAI's ``apiVersion: core/v1`` document): bounded mappings and lists,
an operator's spec (script, function, builtin) and its variables; and :func:`normalize`, which makes a
leaf operator's manifest a one-step pipeline. The graph's rules (:func:`pai_lab.pipelines.manifest.check`)
build on these. Every refusal is a :class:`PipelineError` naming the field.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any

from pai_lab.pipelines.types import (
    NAME_PATTERN,
    PipelineArtifact,
    PipelineError,
    PipelineParameter,
    VariablesSpec,
)

API_VERSION = "core/v1"
MAX_VARIABLES = 256  # inputs or outputs of one operator
MAX_CODE_BYTES = 32 * 2**20  # a ScriptOperator's packed source folder or a FunctionOperator's pickle
OPERATOR_KINDS = ("script", "function", "builtin", "container")


def operator_kind(operator: dict) -> str:
    spec = operator.get("spec") or {}
    for kind in OPERATOR_KINDS:
        if kind in spec:
            return kind
    return "pipeline" if "pipelines" in spec else ""


def as_mapping(value: Any, field_name: str) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise PipelineError(f"{field_name}: expected a mapping", field_name)
    return value


def as_list(value: Any, field_name: str, limit: int) -> list:
    if value is None:
        return []
    if not isinstance(value, list):
        raise PipelineError(f"{field_name}: expected a list", field_name)
    if len(value) > limit:
        raise PipelineError(f"{field_name}: {len(value)} entries; at most {limit} are allowed", field_name)
    return value


def read_variables(data: Any, io_type: str, where: str) -> VariablesSpec:
    data = as_mapping(data, where)
    variables = []
    for kind, cls in (("parameters", PipelineParameter), ("artifacts", PipelineArtifact)):
        for i, item in enumerate(as_list(data.get(kind), f"{where}.{kind}", MAX_VARIABLES)):
            if not isinstance(item, dict) or "name" not in item:
                raise PipelineError(f"{where}.{kind}[{i}]: expected a mapping with a name", f"{where}.{kind}")
            try:
                variables.append(cls.from_dict(item, io_type))
            except PipelineError as exc:
                raise PipelineError(f"{where}.{kind}: {exc.message}", f"{where}.{kind}.{item.get('name')}") from None
    try:
        return VariablesSpec(variables)
    except PipelineError as exc:
        raise PipelineError(f"{where}: {exc.message}", f"{where}.{exc.field}") from None


def check_operator(operator: Any, where: str) -> dict:
    operator = as_mapping(operator, where)
    spec = as_mapping(operator.get("spec"), f"{where}.spec")
    kinds = [k for k in OPERATOR_KINDS if k in spec]
    if len(kinds) != 1:
        raise PipelineError(
            f"{where}: an operator has exactly one of spec.script, spec.function, spec.builtin or spec.container",
            f"{where}.spec",
        )
    kind = kinds[0]
    body = as_mapping(spec[kind], f"{where}.spec.{kind}")
    if kind == "container":
        from pai_lab.pipelines.container import check_spec

        check_spec(body, f"{where}.spec.container")
        return operator
    if kind == "builtin":
        from pai_lab.pipelines.builtins import SPECS

        if body.get("name") not in SPECS:
            raise PipelineError(
                f"{where}.spec.builtin.name: {body.get('name')!r} is not a built-in operator "
                f"(built-in: {', '.join(SPECS)})",
                f"{where}.spec.builtin.name",
            )
        return operator
    if kind == "script":
        entry = body.get("entryFile")
        if not isinstance(entry, str) or not re.match(r"^[A-Za-z_][\w]*\.py$", entry):
            raise PipelineError(
                f"{where}.spec.script.entryFile: {entry!r} must be a .py file at the top of the "
                "source folder, named like a Python module",
                f"{where}.spec.script.entryFile",
            )
        _blob(body.get("code"), f"{where}.spec.script.code")
        check_envs(body.get("envs"), f"{where}.spec.script.envs")
    else:
        _blob(body.get("pickle"), f"{where}.spec.function.pickle", field_name="pickle")
    return operator


def check_envs(value: Any, where: str) -> None:
    """An operator's environment variables: at most MAX_VARIABLES names, each with a text value."""
    envs = as_mapping(value, where)
    if len(envs) > MAX_VARIABLES:
        raise PipelineError(f"{where}: at most {MAX_VARIABLES} variables", where)
    for key, text in envs.items():
        if not re.match(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$", key) or not isinstance(text, (str, int, float)):
            raise PipelineError(f"{where}: {key!r} is not a variable name with a text value", where)


def _blob(value: Any, where: str, field_name: str = "archive") -> None:
    text = value.get(field_name) if isinstance(value, dict) and field_name == "archive" else value
    if not isinstance(text, str) or not text:
        raise PipelineError(f"{where}: missing; build the operator with the SDK, which packs it", where)
    if len(text) > MAX_CODE_BYTES * 4 // 3 + 4:
        raise PipelineError(
            f"{where}: larger than {MAX_CODE_BYTES >> 20} MiB; keep data out of the code and pass it as an artifact",
            where,
        )
    try:
        base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise PipelineError(f"{where}: not base64", where) from None


def normalize(manifest: Any) -> dict:
    """A pipeline manifest; a leaf operator's manifest becomes a one-step pipeline with its signature."""
    manifest = as_mapping(manifest, "manifest")
    if manifest.get("apiVersion", API_VERSION) != API_VERSION:
        raise PipelineError(
            f"apiVersion: {manifest.get('apiVersion')!r}; this server reads {API_VERSION}", "apiVersion"
        )
    spec = as_mapping(manifest.get("spec"), "spec")
    if "pipelines" in spec:
        return manifest
    if not any(k in spec for k in OPERATOR_KINDS):
        raise PipelineError(
            "spec: a manifest has spec.pipelines (a pipeline) or spec.script/function/container (an operator)", "spec"
        )
    meta = as_mapping(manifest.get("metadata"), "metadata")
    name = str(meta.get("identifier") or "step")
    name = name if NAME_PATTERN.match(name) else "step"
    inputs = as_mapping(spec.get("inputs"), "spec.inputs")
    outputs = as_mapping(spec.get("outputs"), "spec.outputs")
    args = {
        kind: [
            {"name": v.get("name"), "from": "{{inputs.%s.%s}}" % (kind, v.get("name"))}
            for v in as_list(inputs.get(kind), f"spec.inputs.{kind}", MAX_VARIABLES)
            if isinstance(v, dict)
        ]
        for kind in ("parameters", "artifacts")
    }
    outs = {
        kind: [
            {
                **{k: v for k, v in o.items() if k in ("name", "metadata", "type", "desc")},
                "from": "{{pipelines.%s.outputs.%s.%s}}" % (name, kind, o.get("name")),
            }
            for o in as_list(outputs.get(kind), f"spec.outputs.{kind}", MAX_VARIABLES)
            if isinstance(o, dict)
        ]
        for kind in ("parameters", "artifacts")
    }
    return {
        "apiVersion": API_VERSION,
        "metadata": meta,
        "spec": {
            "inputs": inputs,
            "outputs": outs,
            "pipelines": [
                {
                    "apiVersion": API_VERSION,
                    "metadata": {**meta, "name": name},
                    "spec": {"arguments": args, "dependencies": [], "operator": manifest},
                }
            ],
        },
    }
