"""Request formats the gateway speaks: EAS (JSON and the TF processor's protobuf), TF Serving
REST and the Open Inference Protocol v2. Each module turns a request body into tensors and
tensors back into a response body; the gateway does the rest."""

from __future__ import annotations

import numpy as np
import orjson

from pai_lab.errors import BadInput

# JSON bodies of tensors are thousands of numbers: orjson reads them several times faster than the
# standard library and writes numpy arrays without a detour through Python lists.
loads = orjson.loads


def dumps(doc) -> bytes:
    return orjson.dumps(doc, option=orjson.OPT_SERIALIZE_NUMPY)


def numeric_json(arr: np.ndarray):
    """A numeric array as ``dumps`` writes it directly (a list where orjson cannot)."""
    if arr.dtype.kind in "fiub" and arr.dtype.byteorder in "=|" and arr.dtype != np.float16:
        return np.ascontiguousarray(arr)
    return arr.tolist()


# dtype names of a SavedModel signature -> numpy
TF_DTYPES = {
    "DT_FLOAT": np.float32,
    "DT_DOUBLE": np.float64,
    "DT_INT32": np.int32,
    "DT_INT64": np.int64,
    "DT_INT16": np.int16,
    "DT_INT8": np.int8,
    "DT_UINT8": np.uint8,
    "DT_UINT16": np.uint16,
    "DT_BOOL": np.bool_,
    "DT_STRING": np.object_,
    "DT_HALF": np.float16,
}


def fit_inputs(signature: dict, inputs: dict) -> dict[str, np.ndarray]:
    """Check tensors against the signature: names, dtype (cast when lossless) and trailing shape.

    An input that ``keeps_integers`` (the pytorch processor's) takes whole numbers in the integer type
    they were sent in (JSON integers: int64) where its ``type`` is a float or an integer type; other
    numbers are cast to its ``type``. Errors name the input and the expected shape and dtype, so a
    caller can fix the request."""
    spec = {i["name"]: i for i in signature["inputs"]}
    unknown = [k for k in inputs if k not in spec]
    if unknown:
        raise BadInput(f"unknown input {unknown[0]!r}; the signature's inputs are: {', '.join(spec)}", unknown[0])
    missing = [k for k in spec if k not in inputs]
    if missing:
        s = spec[missing[0]]
        raise BadInput(f"input {missing[0]!r} is missing; expected shape {s['shape']} of {s['type']}", missing[0])
    out = {}
    for name, value in inputs.items():
        s = spec[name]
        want = TF_DTYPES.get(s["type"], np.float32)
        keeps_integers = bool(s.get("keeps_integers")) and np.dtype(want).kind in "fiu"
        try:
            # bytes straight to objects: a fixed-width bytes array would drop trailing NUL bytes
            if isinstance(value, np.ndarray):
                arr = value
            elif np.dtype(want).kind == "f" and not keeps_integers:  # numbers straight to the float type: one pass
                arr = np.array(value, dtype=want)
            else:
                arr = np.asarray(value, dtype=object if want is np.object_ else None)
            if want is np.object_:
                arr = arr.astype(object)
            elif keeps_integers and arr.dtype.kind in "iu":
                pass  # as sent
            elif arr.dtype != want:
                if arr.dtype.kind in "fc" and np.dtype(want).kind in "iub":
                    raise ValueError("would lose the fraction")
                arr = arr.astype(want)
        except (ValueError, TypeError) as exc:
            raise BadInput(
                f"input {name!r} does not fit: expected {s['type']} of shape {s['shape']} ({exc})", name
            ) from None
        shape = s["shape"]
        if shape is not None and (
            arr.ndim != len(shape) or any(d not in (-1, None) and d != a for d, a in zip(shape, arr.shape))
        ):
            raise BadInput(
                f"input {name!r} has shape {list(arr.shape)}; expected {shape} of {s['type']} (-1: any size)", name
            )
        out[name] = arr
    return out
