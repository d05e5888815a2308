"""What runs inside an instance process: a SavedModel (the ``tensorflow`` processor) or a custom
Python processor (a class with ``initialize()`` and ``process(data)``). Each is loaded once per
instance and then called from the instance's worker threads."""

from __future__ import annotations

import importlib.util
import inspect
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np


class ProcessorError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


_DT_NAMES = {"float32": "DT_FLOAT", "float64": "DT_DOUBLE", "float16": "DT_HALF", "int32": "DT_INT32",
             "int64": "DT_INT64", "int16": "DT_INT16", "int8": "DT_INT8", "uint8": "DT_UINT8", "uint16": "DT_UINT16",
             "bool": "DT_BOOL", "string": "DT_STRING"}


CLASS_NAMES_FILE = "class_names.json"
PROBABILITIES = "probabilities"
LABEL_OUTPUTS = {"label": {"name": "label", "shape": [-1], "type": "DT_STRING"},
                 "score": {"name": "score", "shape": [-1], "type": "DT_FLOAT"}}


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


def _spec_json(spec) -> dict:
    shape = None if spec.shape.rank is None else [-1 if d is None else int(d) for d in spec.shape.as_list()]
    return {"name": None, "shape": shape, "type": _DT_NAMES.get(spec.dtype.name, "DT_" + spec.dtype.name.upper())}


class TensorFlowProcessor:
    """Serves every signature of one SavedModel."""

    kind = "tensorflow"

    def __init__(self, model_dir: str, class_names: list[str] | None = None):
        import tensorflow as tf

        self._tf = tf
        self.model = tf.saved_model.load(model_dir)
        self.signatures = dict(self.model.signatures)
        if not self.signatures:
            raise ProcessorError(400, f"the SavedModel at {model_dir} has no signatures; export it with one "
                                      "(tf.saved_model.save(model, path, signatures=...))")
        self.class_names = class_names if class_names is not None else read_class_names(model_dir)
        self.signature_json = {name: self._describe(name, fn) for name, fn in self.signatures.items()}
        # with a class list, a signature answering class probabilities [N, C] also answers `label`
        # (the arg-max class's name) and `score` (its probability)
        self.label_source = {name: src for name, sig in self.signature_json.items()
                             if (src := self._probabilities_of(sig)) is not None}
        for name in self.label_source:
            self.signature_json[name]["outputs"] += list(LABEL_OUTPUTS.values())
        self.default_signature = ("serving_default" if "serving_default" in self.signatures
                                  else sorted(self.signatures)[0])

    @staticmethod
    def _describe(name: str, fn) -> dict:
        inputs = []
        for key, spec in sorted(fn.structured_input_signature[1].items()):
            inputs.append({**_spec_json(spec), "name": key})
        outputs = []
        for key, spec in sorted(fn.structured_outputs.items()):
            outputs.append({**_spec_json(spec), "name": key})
        return {"signature_name": name, "inputs": inputs, "outputs": outputs}

    def _probabilities_of(self, sig: dict) -> str | None:
        """The output holding class probabilities: ``probabilities``, else the one float [N, C]
        output whose C fits the class list."""
        if not self.class_names:
            return None
        outputs = {o["name"]: o for o in sig["outputs"]}
        if set(LABEL_OUTPUTS) & set(outputs):
            return None  # the model answers a label of its own
        fits = [o for o in outputs.values() if o["type"] in ("DT_FLOAT", "DT_DOUBLE", "DT_HALF")
                and o["shape"] is not None and len(o["shape"]) == 2
                and o["shape"][1] in (-1, len(self.class_names))]
        if PROBABILITIES in outputs:
            return PROBABILITIES if outputs[PROBABILITIES] in fits else None
        return fits[0]["name"] if len(fits) == 1 else None

    def predict(self, signature_name: str | None, inputs: dict[str, np.ndarray],
                output_filter: list[str] | None = None) -> dict[str, np.ndarray]:
        name = signature_name or self.default_signature
        fn = self.signatures.get(name)
        if fn is None:
            raise ProcessorError(400, f"unknown signature_name {name!r}; the model has: "
                                      f"{', '.join(sorted(self.signatures))}")
        tf = self._tf
        feeds = {k: tf.constant(v) for k, v in inputs.items()}
        out = fn(**feeds)
        source = self.label_source.get(name)
        extra = list(LABEL_OUTPUTS) if source else []
        names = output_filter or [*out, *extra]
        missing = [n for n in names if n not in out and n not in extra]
        if missing:
            raise ProcessorError(400, f"unknown output {missing[0]!r} in output_filter; outputs are: "
                                      f"{', '.join(sorted([*out, *extra]))}")
        result = {n: out[n].numpy() for n in names if n in out}
        if source and set(extra) & set(names):
            probabilities = out[source].numpy()
            best = probabilities.argmax(axis=-1)
            classes = self.class_names or []  # a label source exists only when there are class names
            labels = np.array([classes[i] if i < len(classes) else str(i) for i in best.tolist()], dtype=np.object_)
            scores = probabilities.max(axis=-1).astype(np.float32)
            result.update({n: {"label": labels, "score": scores}[n] for n in names if n in extra})
            result = {n: result[n] for n in names}  # in the order asked
        return result


class PythonProcessor:
    """A user's processor: ``processor_entry`` (a .py file) in ``processor_path`` defines a class
    (``processor_mainclass``, or the one class with a ``process`` method) or module functions
    ``initialize()`` and ``process(data)``. ``process`` gets the request body as bytes and returns
    the response body (bytes, str or a JSON-able object), optionally with an HTTP status:
    ``(body, status)``. A processor that also defines ``process_batch(datas)`` (a list of bodies
    in, a list of answers out, in order) is called with batches when ``rpc.batching`` is on."""

    kind = "python"

    def __init__(self, processor_dir: str, entry: str, mainclass: str | None, model_dir: str | None,
                 model_config: Any):
        self.signature_json: dict = {}
        path = Path(processor_dir) / entry if entry else Path(processor_dir)
        if not path.is_file():
            raise ProcessorError(400, f"processor_entry {entry!r} not found in processor_path")
        sys.path.insert(0, str(path.parent))
        spec = importlib.util.spec_from_file_location(f"pai_processor_{path.stem}", path)
        if spec is None or spec.loader is None:
            raise ProcessorError(400, f"processor_entry {entry!r} is not a Python file")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        target = None
        if mainclass:
            target = getattr(module, mainclass.rsplit(".", 1)[-1], None)
            if target is None:
                raise ProcessorError(400, f"processor_mainclass {mainclass!r} is not defined in {entry}")
        else:
            classes = [c for _, c in inspect.getmembers(module, inspect.isclass)
                       if c.__module__ == module.__name__ and hasattr(c, "process")]
            if len(classes) == 1:
                target = classes[0]
        if target is not None:
            obj = target()
        elif hasattr(module, "process"):
            obj = module
        else:
            raise ProcessorError(400, f"{entry} defines neither a class with process() nor a process() "
                                      "function; set processor_mainclass")
        for attr, value in (("model_path", model_dir), ("model_config", model_config)):
            try:
                setattr(obj, attr, value)
            except AttributeError:
                pass
        if hasattr(obj, "initialize"):
            obj.initialize()
        self.obj = obj

    @property
    def batchable(self) -> bool:
        return callable(getattr(self.obj, "process_batch", None))

    def process(self, data: bytes) -> tuple[bytes, int]:
        return self._answer(self.obj.process(data))

    def process_batch(self, datas: list[bytes]) -> list[tuple[bytes, int]]:
        results = self.obj.process_batch(list(datas))
        if not isinstance(results, (list, tuple)) or len(results) != len(datas):
            got = len(results) if isinstance(results, (list, tuple)) else type(results).__name__
            raise ProcessorError(500, f"process_batch must return one answer per request, in order: got {got} "
                                      f"for {len(datas)} requests")
        return [self._answer(r) for r in results]

    @staticmethod
    def _answer(result) -> tuple[bytes, int]:
        status = 200
        if isinstance(result, tuple) and len(result) == 2 and isinstance(result[1], int):
            result, status = result
        if isinstance(result, str):
            result = result.encode()
        elif not isinstance(result, (bytes, bytearray)):
            result = json.dumps(result, default=_json_default).encode()
        return bytes(result), status


def _json_default(value):
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def load(config: dict):
    if config["processor_kind"] == "python":
        return PythonProcessor(config["processor_dir"], config.get("processor_entry") or "",
                               config.get("processor_mainclass"), config.get("model_dir"),
                               config.get("model_config"))
    return TensorFlowProcessor(config["model_dir"], config.get("class_names"))
