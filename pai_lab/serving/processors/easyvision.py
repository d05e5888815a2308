"""The ``easyvision`` processor: pai_lab's trained image models (a SavedModel whose signature takes
encoded images, ``image_bytes``, decoded and resized inside the graph, with ``class_names.json``
beside it) called with images, answered with class names, as EAS's EasyVision processor answers.

A request is an image's bytes as they are (PNG, JPEG, GIF, BMP), its base64 text, or JSON
``{"image": "<base64>"}`` / ``{"images": [...]}`` / a list of base64 strings. A classifier answers
``{"class", "class_name", "class_probs"}`` per image; a detector (``detection_boxes``,
``detection_scores``, ``detection_classes``) answers its boxes above ``score_threshold``
(``model_config``, 0.5) with ``detection_class_names``. One image gives one object, several a list."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

import numpy as np

from pai_lab.serving.processors.base import ProcessorError, answer
from pai_lab.serving.processors.tensorflow import TensorFlowProcessor

_MAGIC = (b"\x89PNG", b"\xff\xd8\xff", b"GIF8", b"BM", b"RIFF")
_DETECTION = ("detection_boxes", "detection_scores", "detection_classes")
_HOW = 'send the image bytes, their base64, or JSON {"image": "<base64>"} / {"images": ["<base64>", ...]}'


def _decode(text: Any) -> bytes:
    if isinstance(text, dict) and "b64" in text:
        text = text["b64"]
    if not isinstance(text, str):
        raise ProcessorError(400, f"an image must be a base64 string; {_HOW}")
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ProcessorError(400, f"an image is not valid base64; {_HOW}") from None


def images_of(data: bytes) -> tuple[list[bytes], bool]:
    """The encoded images in a request body, and whether it held one (answered with one object)."""
    if data.startswith(_MAGIC):
        return [data], True
    stripped = data.strip()
    if stripped[:1] in (b"{", b"["):
        try:
            request = json.loads(stripped)
        except ValueError:
            raise ProcessorError(400, f"the request body is not valid JSON; {_HOW}") from None
        if isinstance(request, dict):
            if "image" in request:
                return [_decode(request["image"])], True
            if isinstance(request.get("images"), list):
                return [_decode(i) for i in request["images"]], False
        if isinstance(request, list):
            return [_decode(i) for i in request], False
        raise ProcessorError(400, f"no image in the request; {_HOW}")
    try:
        return [base64.b64decode(stripped, validate=True)], True
    except (binascii.Error, ValueError):
        raise ProcessorError(400, f"the request is neither an image nor base64; {_HOW}") from None


class EasyVisionProcessor:
    kind = "easyvision"
    takes_body = True

    def __init__(self, model_dir: str, class_names: list[str] | None, model_config: Any = None):
        self.model = TensorFlowProcessor(model_dir, class_names)
        self.signature_json: dict = {}
        sig = self.model.signature_json[self.model.default_signature]
        strings = [i["name"] for i in sig["inputs"] if i["type"] == "DT_STRING"]
        if len(sig["inputs"]) != 1 or len(strings) != 1:
            raise ProcessorError(
                400,
                f"processor easyvision needs a SavedModel whose {sig['signature_name']} "
                "signature takes encoded images (one tf.string input such as image_bytes, "
                "as pai_lab's image trainers save it); this one takes "
                f"{', '.join(i['name'] + ' ' + i['type'] for i in sig['inputs'])}",
            )
        self.input = strings[0]
        outputs = {o["name"] for o in sig["outputs"]}
        self.detector = set(_DETECTION) <= outputs
        self.probabilities = self.model.label_source.get(self.model.default_signature) or (
            "probabilities" if "probabilities" in outputs else None
        )
        if not self.detector and self.probabilities is None:
            raise ProcessorError(
                400,
                "processor easyvision serves classifiers (an output `probabilities` [N, C]) "
                f"and detectors ({', '.join(_DETECTION)}); this model answers "
                f"{', '.join(sorted(outputs))}",
            )
        config = model_config if isinstance(model_config, dict) else {}
        self.threshold = float(config.get("score_threshold", 0.5))
        self.names = self.model.class_names or []

    def _name(self, index: int) -> str:
        return self.names[index] if 0 <= index < len(self.names) else str(index)

    def _predict(self, images: list[bytes]) -> list[dict]:
        inputs = {self.input: np.array(images, dtype=object)}
        if self.detector:
            out = self.model.predict(None, inputs, list(_DETECTION))
            result: list[dict[str, Any]] = []
            for boxes, scores, classes in zip(*(out[n] for n in _DETECTION)):
                keep = [k for k, s in enumerate(scores.tolist()) if s >= self.threshold]
                result.append(
                    {
                        "detection_boxes": [boxes[k].tolist() for k in keep],
                        "detection_scores": [float(scores[k]) for k in keep],
                        "detection_classes": [int(classes[k]) for k in keep],
                        "detection_class_names": [self._name(int(classes[k])) for k in keep],
                    }
                )
            return result
        assert self.probabilities is not None
        probabilities = self.model.predict(None, inputs, [self.probabilities])[self.probabilities]
        result = []
        for row in probabilities.tolist():
            best = int(np.argmax(row))
            result.append(
                {
                    "class": best,
                    "class_name": self._name(best),
                    "class_probs": {self._name(i): float(p) for i, p in enumerate(row)},
                }
            )
        return result

    def process(self, data: bytes) -> tuple[bytes, int]:
        images, one = images_of(data)
        if not images:
            raise ProcessorError(400, f"no image in the request; {_HOW}")
        result = self._predict(images)
        return answer(result[0] if one else result)

    batchable = True

    def process_batch(self, datas: list[bytes]) -> list[tuple[bytes, int]]:
        """Waiting requests in one model call (rpc.batching); a request that cannot be read is
        answered with its own 400 and the others still run."""
        parsed: list[Any] = []
        for data in datas:
            try:
                images, one = images_of(data)
                parsed.append((images, one) if images else ProcessorError(400, f"no image in the request; {_HOW}"))
            except ProcessorError as exc:
                parsed.append(exc)
        flat = [img for p in parsed if not isinstance(p, ProcessorError) for img in p[0]]
        results = self._predict(flat) if flat else []
        answers, at = [], 0
        for p in parsed:
            if isinstance(p, ProcessorError):
                answers.append(answer((p.message, p.status)))  # as the gateway words a refusal
                continue
            mine = results[at : at + len(p[0])]
            at += len(p[0])
            answers.append(answer(mine[0] if p[1] else mine))
        return answers
