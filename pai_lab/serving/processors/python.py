"""A custom Python processor (``processor_type: python``): a user's class with ``initialize()`` and
``process(data)``, loaded from ``processor_entry`` in ``processor_path``."""

from __future__ import annotations

import importlib.util
import inspect
import sys
from pathlib import Path
from typing import Any

from pai_lab.serving.processors.base import ProcessorError, answer


class PythonProcessor:
    """A user's processor: ``processor_entry`` (a .py file) in ``processor_path`` defines a class
    (``processor_mainclass``, or the one class with a ``process`` method) or module functions
    ``initialize()`` and ``process(data)``. ``process`` gets the request body as bytes and returns
    the response body (bytes, str or a JSON-able object), optionally with an HTTP status:
    ``(body, status)``. A processor that also defines ``process_batch(datas)`` (a list of bodies
    in, a list of answers out, in order) is called with batches when ``rpc.batching`` is on."""

    kind = "python"
    takes_body = True  # the gateway hands it the request body as it is

    def __init__(self, processor_dir: str, entry: str, mainclass: str | None, model_dir: str | None, model_config: Any):
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
            classes = [
                c
                for _, c in inspect.getmembers(module, inspect.isclass)
                if c.__module__ == module.__name__ and hasattr(c, "process")
            ]
            if len(classes) == 1:
                target = classes[0]
        if target is not None:
            obj = target()
        elif hasattr(module, "process"):
            obj = module
        else:
            raise ProcessorError(
                400, f"{entry} defines neither a class with process() nor a process() function; set processor_mainclass"
            )
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
        return answer(self.obj.process(data))

    def process_batch(self, datas: list[bytes]) -> list[tuple[bytes, int]]:
        results = self.obj.process_batch(list(datas))
        if not isinstance(results, (list, tuple)) or len(results) != len(datas):
            got = len(results) if isinstance(results, (list, tuple)) else type(results).__name__
            raise ProcessorError(
                500, f"process_batch must return one answer per request, in order: got {got} for {len(datas)} requests"
            )
        return [answer(r) for r in results]
