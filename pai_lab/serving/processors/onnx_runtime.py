"""The ``onnx`` processor: one ONNX model run by onnxruntime, served as one signature
(``serving_default``) so the EAS, TF Serving and Open Inference protocols all reach it."""

from __future__ import annotations

import numpy as np

from pai_lab.serving.processors.base import DT_NAMES, ProcessorError

SIGNATURE = "serving_default"
# onnxruntime's element type names -> numpy's
_ORT_TYPES = {
    "tensor(float)": "float32",
    "tensor(double)": "float64",
    "tensor(float16)": "float16",
    "tensor(int32)": "int32",
    "tensor(int64)": "int64",
    "tensor(int16)": "int16",
    "tensor(int8)": "int8",
    "tensor(uint8)": "uint8",
    "tensor(uint16)": "uint16",
    "tensor(bool)": "bool",
    "tensor(string)": "string",
}


def _describe(arg) -> dict:
    # symbolic or unknown dimensions (the batch) are -1, as in a SavedModel's signature
    shape = [d if isinstance(d, int) and d >= 0 else -1 for d in arg.shape] if arg.shape is not None else None
    dtype = _ORT_TYPES.get(arg.type, "")
    return {"name": arg.name, "shape": shape, "type": DT_NAMES.get(dtype, "DT_INVALID")}


class OnnxProcessor:
    kind = "onnx"
    takes_body = False  # tensors in, tensors out, like the tensorflow processor

    def __init__(self, model_file: str, threads: int | None = None):
        try:
            import onnxruntime as ort
        except ImportError:
            raise ProcessorError(
                400, 'processor onnx needs onnxruntime on the server: pip install "pai_lab[onnx]"'
            ) from None
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads  # metadata.cpu, as for TensorFlow
        try:
            self.session = ort.InferenceSession(model_file, options, providers=ort.get_available_providers())
        except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own kinds for a bad file
            raise ProcessorError(400, f"model_path is not a model onnxruntime can load: {exc}") from None
        inputs = [_describe(a) for a in self.session.get_inputs()]
        outputs = [_describe(a) for a in self.session.get_outputs()]
        self.output_names = [o["name"] for o in outputs]
        self.signature_json = {SIGNATURE: {"signature_name": SIGNATURE, "inputs": inputs, "outputs": outputs}}
        self.default_signature = SIGNATURE

    def predict(
        self, signature_name: str | None, inputs: dict[str, np.ndarray], output_filter: list[str] | None = None
    ) -> dict[str, np.ndarray]:
        if signature_name not in (None, "", SIGNATURE):
            raise ProcessorError(400, f"unknown signature_name {signature_name!r}; an ONNX model has one: {SIGNATURE}")
        names = list(output_filter or self.output_names)
        unknown = [n for n in names if n not in self.output_names]
        if unknown:
            raise ProcessorError(
                400, f"unknown output {unknown[0]!r} in output_filter; outputs are: {', '.join(self.output_names)}"
            )
        values = self.session.run(names, dict(inputs))
        return {n: np.asarray(v) for n, v in zip(names, values)}
