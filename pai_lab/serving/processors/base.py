"""What every processor shares: its refusal (``ProcessorError``), the class list saved beside a model,
and how an answer becomes a response body."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np


class ProcessorError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


# numpy dtype names -> the EAS signature's type names
DT_NAMES = {
    "float32": "DT_FLOAT",
    "float64": "DT_DOUBLE",
    "float16": "DT_HALF",
    "int32": "DT_INT32",
    "int64": "DT_INT64",
    "int16": "DT_INT16",
    "int8": "DT_INT8",
    "uint8": "DT_UINT8",
    "uint16": "DT_UINT16",
    "bool": "DT_BOOL",
    "string": "DT_STRING",
}

CLASS_NAMES_FILE = "class_names.json"
PROBABILITIES = "probabilities"
LABEL_OUTPUTS = {
    "label": {"name": "label", "shape": [-1], "type": "DT_STRING"},
    "score": {"name": "score", "shape": [-1], "type": "DT_FLOAT"},
}


def read_class_names(*folders) -> list[str] | None:
    """The class list saved with a model (``class_names.json``, a JSON list of strings, at the
    SavedModel folder's root), from the first folder that has one; None when none has."""
    for folder in folders:
        if not folder:
            continue
        path = Path(folder) / CLASS_NAMES_FILE
        if path.is_file():
            try:
                names = json.loads(path.read_text())
            except (OSError, ValueError):
                return None
            if isinstance(names, list):
                return [str(n) for n in names]
    return None


def json_default(value):
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def answer(result: Any) -> tuple[bytes, int]:
    """A processor's result as (body, status): bytes or str as they are, anything else as JSON;
    ``(body, status)`` sets the status."""
    status = 200
    if isinstance(result, tuple) and len(result) == 2 and isinstance(result[1], int):
        result, status = result
    if isinstance(result, str):
        result = result.encode()
    elif not isinstance(result, (bytes, bytearray)):
        result = json.dumps(result, default=json_default).encode()
    return bytes(result), status


def json_body(data: bytes, what: str) -> Any:
    """A request body that must be JSON; a 400 saying what was expected otherwise."""
    try:
        return json.loads(data)
    except (ValueError, UnicodeDecodeError):
        raise ProcessorError(400, f"the request body is not JSON; send {what}") from None
