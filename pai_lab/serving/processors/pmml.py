"""The ``pmml`` processor: a PMML model (scorecards, regressions, trees... as exported by PAI's
components or any PMML producer) evaluated by pypmml (PMML4S on a Java runtime).

As EAS's PMML processor: the body is a JSON object of feature values, or a list of them; the answer
is the model's output fields for each (the predicted value, probabilities per class), in the same
shape."""

from __future__ import annotations

import math
import threading
from typing import Any

from pai_lab.serving.processors.base import ProcessorError, answer, json_body

JAVA_HINT = "pypmml needs a Java runtime (Debian: apt-get install default-jre-headless, or set JAVA_HOME)"


def _plain(value: Any) -> Any:
    return None if isinstance(value, float) and math.isnan(value) else value  # JSON has no NaN


class PmmlProcessor:
    kind = "pmml"
    takes_body = True

    def __init__(self, model_file: str):
        try:
            from pypmml import Model
        except ImportError:
            raise ProcessorError(
                400, 'processor pmml needs pypmml on the server: pip install "pai_lab[pmml]"'
            ) from None
        try:
            self.model = Model.load(model_file)
        except FileNotFoundError:
            raise  # the folder went away: fatal as any missing model
        except Exception as exc:  # noqa: BLE001 - the JVM's errors come as its own kinds
            text = str(exc)
            if "java" in text.lower() and ("not found" in text.lower() or "no such file" in text.lower()):
                raise ProcessorError(400, f"{JAVA_HINT}: {text}") from None
            raise ProcessorError(400, f"model_path is not a PMML model pypmml can load: {text[:500]}") from None
        self.inputs = list(self.model.inputNames)
        self.signature_json: dict = {}
        self._lock = threading.Lock()  # one call at a time through the JVM bridge

    def _score(self, record: Any) -> dict:
        if not isinstance(record, dict):
            raise ProcessorError(
                400,
                "each record must be a JSON object of feature values, e.g. "
                f"{{{', '.join(repr(n) + ': ...' for n in self.inputs[:3])}}}",
            )
        with self._lock:
            out = self.model.predict(record)
        return {k: _plain(v) for k, v in out.items()}

    def process(self, data: bytes) -> tuple[bytes, int]:
        what = f"a JSON object of the model's inputs ({', '.join(self.inputs)}) or a list of them"
        request = json_body(data, what)
        if isinstance(request, list):
            return answer([self._score(r) for r in request])
        return answer(self._score(request))
