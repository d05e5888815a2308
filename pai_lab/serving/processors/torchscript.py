"""The ``pytorch`` processor: a TorchScript module (``torch.jit.save``) served as one signature,
``serving_default``, read from the module's ``forward``: one tensor argument is input ``input``
(several are named as in ``forward``); a tensor answer is output ``output``, a tuple of them
``output_0``, ``output_1``..., a dict of them its keys. Inputs take the dtype of the module's
floating parameters (float32 unless it holds others). With ``class_names.json`` beside the model
file, a module answering class probabilities [N, C] also answers ``label`` and ``score``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from pai_lab.serving.processors.base import DT_NAMES, LABEL_OUTPUTS, ProcessorError, read_class_names

SIGNATURE = "serving_default"


def _inputs_of(schema) -> list[str]:
    """The tensor arguments ``forward`` needs; anything else it needs cannot be sent."""
    names = []
    for arg in schema.arguments[1:]:  # [0] is self
        if arg.has_default_value():
            continue
        if arg.type.kind() != "TensorType":
            raise ProcessorError(
                400,
                f"model_path's forward() needs argument {arg.name!r} of type {arg.type}; the pytorch "
                "processor sends tensors only (give it a default or take it as a tensor)",
            )
        names.append(arg.name)
    if not names:
        raise ProcessorError(400, "model_path's forward() takes no tensor; the pytorch processor sends one or more")
    return ["input"] if len(names) == 1 else names


def _outputs_of(schema) -> list[str] | None:
    """The output names, or None for a dict (its keys are known once it answers)."""
    kind = schema.returns[0].type.kind() if schema.returns else "TensorType"
    if kind == "TupleType":
        return [f"output_{i}" for i in range(len(schema.returns[0].type.elements()))]
    if kind == "DictType":
        return None
    return ["output"]


class TorchScriptProcessor:
    kind = "torch"
    takes_body = False

    def __init__(self, model_file: str, threads: int | None = None):
        try:
            import torch
        except ImportError:
            raise ProcessorError(
                400, 'processor pytorch needs torch on the server: pip install "pai_lab[torch]"'
            ) from None
        self._torch = torch
        if threads:
            torch.set_num_threads(threads)
        try:
            self.module = torch.jit.load(model_file, map_location="cpu")
        except Exception as exc:  # noqa: BLE001 - torch raises RuntimeError for a file that is no TorchScript
            raise ProcessorError(400, f"model_path is not a TorchScript module (torch.jit.save): {exc}") from None
        self.module.eval()
        schema = self.module.forward.schema
        self.input_names = _inputs_of(schema)
        self.output_names = _outputs_of(schema)
        floats = [p.dtype for p in self.module.parameters() if p.dtype.is_floating_point]
        self.dtype = floats[0] if floats else torch.float32
        dt = DT_NAMES.get(str(self.dtype).removeprefix("torch."), "DT_FLOAT")
        self.class_names = read_class_names(Path(model_file).parent)
        labelled = bool(self.class_names) and self.output_names is not None and len(self.output_names) == 1
        self.label_source = self.output_names[0] if labelled and self.output_names else None
        outputs: list[dict[str, Any]] = [{"name": n, "shape": None, "type": dt} for n in self.output_names or []]
        if self.label_source:
            outputs += list(LABEL_OUTPUTS.values())
        self.signature_json = {
            SIGNATURE: {
                "signature_name": SIGNATURE,
                "inputs": [{"name": n, "shape": None, "type": dt} for n in self.input_names],
                "outputs": outputs,
            }
        }
        self.default_signature = SIGNATURE

    def _tensor(self, value: np.ndarray):
        arr = np.asarray(value)
        if not arr.flags.writeable or not arr.flags.c_contiguous:
            arr = np.array(arr, order="C")  # torch takes over the memory: its own, writable copy
        tensor = self._torch.from_numpy(arr)
        return tensor.to(self.dtype) if tensor.is_floating_point() and tensor.dtype != self.dtype else tensor

    def _numpy(self, value) -> np.ndarray:
        torch = self._torch
        if not isinstance(value, torch.Tensor):
            return np.asarray(value)
        value = value.detach().cpu()
        return (value.float() if value.dtype == torch.bfloat16 else value).numpy()

    def _run(self, inputs: dict[str, np.ndarray]) -> dict:
        torch = self._torch
        missing = [n for n in self.input_names if n not in inputs]
        if missing:
            raise ProcessorError(
                400, f"input {missing[0]!r} is missing; the model's inputs are: {', '.join(self.input_names)}"
            )
        try:
            with torch.inference_mode():
                out = self.module(*(self._tensor(inputs[n]) for n in self.input_names))
        except RuntimeError as exc:
            # the model refused the tensors (a shape or dtype it cannot take): the last line says why
            why = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
            shapes = ", ".join(f"{n!r} of shape {list(np.shape(inputs[n]))}" for n in self.input_names)
            raise ProcessorError(400, f"the model cannot take input {shapes}: {why}") from None
        if isinstance(out, dict):
            return dict(out)
        if isinstance(out, (tuple, list)):
            return {f"output_{i}": v for i, v in enumerate(out)}
        return {"output": out}

    def predict(
        self, signature_name: str | None, inputs: dict[str, np.ndarray], output_filter: list[str] | None = None
    ) -> dict[str, np.ndarray]:
        if signature_name not in (None, "", SIGNATURE):
            raise ProcessorError(
                400, f"unknown signature_name {signature_name!r}; a TorchScript model has one: {SIGNATURE}"
            )
        outputs = {k: self._numpy(v) for k, v in self._run(inputs).items()}
        source = outputs.get(self.label_source or "")
        fits = source is not None and source.ndim == 2 and source.shape[1] == len(self.class_names or [])
        extra = list(LABEL_OUTPUTS) if fits else []
        names = output_filter or [*outputs, *extra]
        unknown = [n for n in names if n not in outputs and n not in extra]
        if unknown:
            raise ProcessorError(
                400, f"unknown output {unknown[0]!r} in output_filter; outputs are: {', '.join([*outputs, *extra])}"
            )
        if source is not None and extra and set(extra) & set(names):
            classes = self.class_names or []
            outputs["label"] = np.array([classes[i] for i in source.argmax(axis=-1).tolist()], dtype=np.object_)
            outputs["score"] = source.max(axis=-1).astype(np.float32)
        return {n: outputs[n] for n in names}
