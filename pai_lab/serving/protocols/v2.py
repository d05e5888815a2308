"""Open Inference Protocol v2 (KServe, Triton, MLServer): ``/v2/models/<m>/infer`` with JSON
tensors, and Triton's binary tensor extension (``Inference-Header-Content-Length``), which
``tritonclient`` uses by default."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from pai_lab.errors import BadInput
from pai_lab.serving.protocols import dumps, loads, numeric_json

TO_NUMPY = {
    "BOOL": np.bool_,
    "UINT8": np.uint8,
    "UINT16": np.uint16,
    "UINT32": np.uint32,
    "UINT64": np.uint64,
    "INT8": np.int8,
    "INT16": np.int16,
    "INT32": np.int32,
    "INT64": np.int64,
    "FP16": np.float16,
    "FP32": np.float32,
    "FP64": np.float64,
    "BYTES": np.object_,
}
FROM_NUMPY = {np.dtype(v): k for k, v in TO_NUMPY.items() if v is not np.object_}
FROM_TF = {
    "DT_FLOAT": "FP32",
    "DT_DOUBLE": "FP64",
    "DT_INT32": "INT32",
    "DT_INT64": "INT64",
    "DT_INT16": "INT16",
    "DT_INT8": "INT8",
    "DT_UINT8": "UINT8",
    "DT_UINT16": "UINT16",
    "DT_BOOL": "BOOL",
    "DT_STRING": "BYTES",
    "DT_HALF": "FP16",
}


def _bytes_tensor(raw: bytes, count: int) -> np.ndarray:
    out, pos = [], 0
    for _ in range(count):
        size = int.from_bytes(raw[pos : pos + 4], "little")
        out.append(raw[pos + 4 : pos + 4 + size])
        pos += 4 + size
    return np.array(out, dtype=object)


def parse(body: bytes, header_length: str | None) -> tuple[dict, list[str] | None, set[str], str | None]:
    """Returns (inputs, requested outputs or None, outputs wanted as binary, request id)."""
    binary = memoryview(b"")
    if header_length:
        try:
            n = int(header_length)
        except ValueError:
            raise BadInput("Inference-Header-Content-Length must be an integer", "headers") from None
        if not 0 < n <= len(body):
            raise BadInput(f"Inference-Header-Content-Length {n} is not within the body's {len(body)} bytes", "headers")
        # the tensors stay in the request body: arrays are views of it, not copies
        binary = memoryview(body)[n:]
        body = body[:n]
    try:
        data = loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadInput(f"malformed JSON inference request: {exc}", "body") from None
    if not isinstance(data, dict) or not isinstance(data.get("inputs"), list):
        raise BadInput('send {"inputs": [{"name", "shape", "datatype", "data"}]}', "inputs")
    inputs, offset = {}, 0
    for tensor in data["inputs"]:
        try:
            name, shape, datatype = tensor["name"], tensor["shape"], tensor["datatype"]
        except (KeyError, TypeError):
            raise BadInput("each input needs name, shape and datatype", "inputs") from None
        dtype = TO_NUMPY.get(datatype)
        if dtype is None:
            raise BadInput(f"input {name!r}: unknown datatype {datatype!r}; use one of {', '.join(TO_NUMPY)}", name)
        size = (tensor.get("parameters") or {}).get("binary_data_size")
        if not isinstance(shape, list) or not all(isinstance(d, int) and d >= 0 for d in shape):
            raise BadInput(f"input {name!r}: shape must be a list of sizes (whole numbers >= 0), not {shape!r}", name)
        count = math.prod(shape)  # a plain product: numpy's would first make an array of the list
        if size is not None:
            if not isinstance(size, int) or size < 0 or offset + size > len(binary):
                raise BadInput(
                    f"input {name!r}: binary_data_size {size!r} runs past the {len(binary)} bytes after the header",
                    name,
                )
            raw = binary[offset : offset + size]
            offset += size
            try:
                arr = _bytes_tensor(bytes(raw), count) if dtype is np.object_ else np.frombuffer(raw, dtype=dtype)
            except ValueError:
                raise BadInput(f"input {name!r}: {size} bytes are no whole number of {datatype} values", name) from None
        elif "data" in tensor:
            flat = tensor["data"]
            arr = (
                np.array([v.encode() if isinstance(v, str) else v for v in np.ravel(flat)], dtype=object)
                if dtype is np.object_
                else np.asarray(flat, dtype=dtype)
            )
        else:
            raise BadInput(f"input {name!r} has neither data nor binary_data_size", name)
        try:
            inputs[name] = arr.reshape(shape)
        except ValueError:
            raise BadInput(f"input {name!r}: {arr.size} values do not fill shape {shape}", name) from None
    wanted, as_binary = None, set()
    if data.get("outputs"):
        wanted = [o["name"] for o in data["outputs"]]
        as_binary = {o["name"] for o in data["outputs"] if (o.get("parameters") or {}).get("binary_data")}
    elif (data.get("parameters") or {}).get("binary_data_output"):
        as_binary = {"*"}
    return inputs, wanted, as_binary, data.get("id")


def format(
    model: str, version: int, outputs: dict[str, np.ndarray], as_binary: set[str], request_id: str | None
) -> tuple[bytes, dict]:
    """Returns (body, extra headers)."""
    tensors, blobs = [], []
    for name, arr in outputs.items():
        datatype = "BYTES" if arr.dtype.kind in "SOU" else FROM_NUMPY.get(arr.dtype, "FP32")
        entry: dict[str, Any] = {"name": name, "datatype": datatype, "shape": list(arr.shape)}
        if name in as_binary or "*" in as_binary:
            if datatype == "BYTES":
                raw = b"".join(
                    len(v).to_bytes(4, "little") + v
                    for v in (x if isinstance(x, bytes) else str(x).encode() for x in arr.reshape(-1))
                )
            else:
                raw = np.ascontiguousarray(arr).tobytes()
            entry["parameters"] = {"binary_data_size": len(raw)}
            blobs.append(raw)
        else:
            entry["data"] = (
                [x.decode(errors="replace") if isinstance(x, bytes) else x for x in arr.reshape(-1)]
                if datatype == "BYTES"
                else numeric_json(arr.reshape(-1))
            )
        tensors.append(entry)
    doc = {"model_name": model, "model_version": str(version), "outputs": tensors}
    if request_id is not None:
        doc["id"] = request_id
    head = dumps(doc)
    if not blobs:
        return head, {"Content-Type": "application/json"}
    return head + b"".join(blobs), {
        "Inference-Header-Content-Length": str(len(head)),
        "Content-Type": "application/octet-stream",
    }


def model_metadata(name: str, version: int, signature: dict) -> dict:
    def tensor(t):
        return {"name": t["name"], "datatype": FROM_TF.get(t["type"], "FP32"), "shape": t["shape"] or []}

    return {
        "name": name,
        "versions": [str(version)],
        "platform": "tensorflow_savedmodel",
        "inputs": [tensor(t) for t in signature.get("inputs", [])],
        "outputs": [tensor(t) for t in signature.get("outputs", [])],
    }
