"""TF Serving REST: ``/v1/models/<m>[/versions/<v>|/labels/<l>]:predict`` with row (``instances``)
or columnar (``inputs``) bodies, ``{"b64": ...}`` for bytes; model status and metadata."""

from __future__ import annotations

import base64

import numpy as np

from pai_lab.errors import BadInput
from pai_lab.serving.protocols import dumps, loads, numeric_json


def decode_b64(value):
    if isinstance(value, dict) and set(value) == {"b64"}:
        return base64.b64decode(value["b64"])
    if isinstance(value, list):
        return [decode_b64(v) for v in value]
    return value


def may_hold_b64(body: bytes) -> bool:
    """Whether a JSON body may hold a {"b64": ...} object: one look through the body, far cheaper
    than walking every value it parses into."""
    return b'"b64"' in body


def _as_is(value):
    return value


def _encode(arr: np.ndarray, name: str):
    if arr.dtype.kind in "SO":
        flat = [
            {"b64": base64.b64encode(v).decode()}
            if isinstance(v, bytes) and name.endswith("_bytes")
            else (v.decode(errors="replace") if isinstance(v, bytes) else v)
            for v in arr.reshape(-1)
        ]
        return np.array(flat, dtype=object).reshape(arr.shape).tolist()
    return numeric_json(arr)


def parse(body: bytes, input_names: list[str]) -> tuple[str | None, dict, str]:
    """Returns (signature_name, inputs, "row" | "columnar")."""
    try:
        data = loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadInput(f"malformed JSON body: {exc}", "body") from None
    if not isinstance(data, dict) or ("instances" in data) == ("inputs" in data):
        raise BadInput('send exactly one of "instances" (row format) or "inputs" (columnar format)', "body")
    signature = data.get("signature_name")
    # bytes travel as {"b64": ...}: without one in the body, values are taken as they are (walking
    # thousands of numbers for b64 objects would cost more than parsing them)
    unwrap = decode_b64 if may_hold_b64(body) else _as_is
    if "instances" in data:
        rows = data["instances"]
        if not isinstance(rows, list) or not rows:
            raise BadInput('"instances" must be a non-empty list', "instances")
        if all(isinstance(r, dict) and not set(r) <= {"b64"} for r in rows):
            names = list(rows[0])
            if any(set(r) != set(names) for r in rows):
                raise BadInput("every instance must name the same inputs", "instances")
            return signature, {n: unwrap([r[n] for r in rows]) for n in names}, "row"
        if len(input_names) != 1:
            raise BadInput(
                f"the model has {len(input_names)} inputs ({', '.join(input_names)}); send each "
                "instance as an object {name: value}",
                "instances",
            )
        return signature, {input_names[0]: unwrap(rows)}, "row"
    inputs = data["inputs"]
    if isinstance(inputs, dict) and not set(inputs) <= {"b64"}:
        return signature, {k: unwrap(v) for k, v in inputs.items()}, "columnar"
    if len(input_names) != 1:
        raise BadInput(f'the model has {len(input_names)} inputs; send "inputs" as {{name: value}}', "inputs")
    return signature, {input_names[0]: unwrap(inputs)}, "columnar"


def format(outputs: dict[str, np.ndarray], style: str) -> bytes:
    if style == "columnar":
        if len(outputs) == 1:
            ((name, arr),) = outputs.items()
            return dumps({"outputs": _encode(arr, name)})
        return dumps({"outputs": {k: _encode(v, k) for k, v in outputs.items()}})
    if len(outputs) == 1:
        ((name, arr),) = outputs.items()
        return dumps({"predictions": _encode(arr, name)})
    encoded = {k: _encode(v, k) for k, v in outputs.items()}
    n = len(next(iter(outputs.values())))
    return dumps({"predictions": [{k: encoded[k][i] for k in encoded} for i in range(n)]})


def status(version: int) -> dict:
    return {
        "model_version_status": [
            {"version": str(version), "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}
        ]
    }


def metadata(name: str, version: int, signatures: dict) -> dict:
    def tensor(t):
        dims = [{"size": str(d)} for d in (t["shape"] or [])]
        return {
            "dtype": t["type"],
            "tensor_shape": {"dim": dims, "unknown_rank": t["shape"] is None},
            "name": t["name"],
        }

    defs = {
        sig: {
            "inputs": {t["name"]: tensor(t) for t in s["inputs"]},
            "outputs": {t["name"]: tensor(t) for t in s["outputs"]},
            "method_name": "tensorflow/serving/predict",
        }
        for sig, s in signatures.items()
    }
    return {
        "model_spec": {"name": name, "signature_name": "", "version": str(version)},
        "metadata": {"signature_def": {"signature_def": defs}},
    }
