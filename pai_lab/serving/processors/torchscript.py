"""The ``pytorch`` processor: a TorchScript module (``torch.jit.save``) served as one signature,
``serving_default``, read from the module's ``forward``: one tensor argument is input ``input``
(several are named as in ``forward``); a tensor answer is output ``output``, a tuple of them
``output_0``, ``output_1``..., a dict of them its keys.

An input's dtype: an argument that ``forward`` uses as indices (embedding lookups, ``index_select``,
``gather``...: read from its graph) is ``DT_INT64`` and takes whole numbers only; any other takes the
dtype of the module's floating parameters (float32 unless it holds others) for numbers with a fraction,
while whole numbers keep the integer type they were sent in (EAS JSON integers as int64, a v2 or
protobuf tensor as its own); should the module refuse them as integers, they go to it once more as
floats. With ``class_names.json`` beside the model file, a module answering class probabilities
[N, C] also answers ``label`` and ``score``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from pai_lab.serving.processors.base import DT_NAMES, LABEL_OUTPUTS, ProcessorError, read_class_names

SIGNATURE = "serving_default"

# ops whose argument at this position holds indices: an input that reaches one is an integer input
INDEX_ARGUMENTS = {
    "aten::embedding": 1,
    "aten::embedding_bag": 1,
    "aten::_embedding_bag": 1,
    "aten::index_select": 2,
    "aten::gather": 2,
    "aten::one_hot": 0,
    "aten::bincount": 0,
}
# ops that hand on their first argument's values as they are (reshaped or picked): followed to its uses
PASSING_ON = {
    "aten::view",
    "aten::reshape",
    "aten::flatten",
    "aten::unflatten",
    "aten::unsqueeze",
    "aten::squeeze",
    "aten::contiguous",
    "aten::select",
    "aten::slice",
    "aten::transpose",
    "aten::permute",
    "aten::t",
    "aten::expand",
    "aten::clone",
    "aten::detach",
    "aten::narrow",
}


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


def _used_as_indices(value, depth: int = 0) -> bool:
    for use in value.uses():
        kind = use.user.kind()
        if INDEX_ARGUMENTS.get(kind) == use.offset:
            return True
        passed_on = kind in PASSING_ON and use.offset == 0 and depth < 8
        if passed_on and any(_used_as_indices(out, depth + 1) for out in use.user.outputs()):
            return True
    return False


def _index_arguments(module) -> set[str]:
    """The names of ``forward``'s arguments its graph (submodules inlined) uses as indices; none where the
    graph cannot be read."""
    try:
        graph = module.inlined_graph
        arguments = module.forward.schema.arguments
        values = list(graph.inputs())
    except (AttributeError, RuntimeError):
        return set()
    if len(values) != len(arguments):
        return set()
    return {arg.name for arg, value in zip(arguments[1:], values[1:]) if _used_as_indices(value)}


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
        indices = _index_arguments(self.module)
        if self.input_names == ["input"]:
            indices = {"input"} if indices else set()
        self.index_inputs = indices
        self.class_names = read_class_names(Path(model_file).parent)
        labelled = bool(self.class_names) and self.output_names is not None and len(self.output_names) == 1
        self.label_source = self.output_names[0] if labelled and self.output_names else None
        outputs: list[dict[str, Any]] = [{"name": n, "shape": None, "type": dt} for n in self.output_names or []]
        if self.label_source:
            outputs += list(LABEL_OUTPUTS.values())
        self.signature_json = {
            SIGNATURE: {
                "signature_name": SIGNATURE,
                # keeps_integers: whole numbers reach the module in the integer type they were sent in
                "inputs": [
                    {"name": n, "shape": None, "type": "DT_INT64" if n in indices else dt, "keeps_integers": True}
                    for n in self.input_names
                ],
                "outputs": outputs,
            }
        }
        self.default_signature = SIGNATURE

    def _tensor(self, value: np.ndarray, as_float: bool = False):
        """An input as a tensor: floats (and, ``as_float``, integers) in the module's float type."""
        arr = np.asarray(value)
        if not arr.flags.writeable or not arr.flags.c_contiguous:
            arr = np.array(arr, order="C")  # torch takes over the memory: its own, writable copy
        tensor = self._torch.from_numpy(arr)
        if (tensor.is_floating_point() or as_float) and tensor.dtype != self.dtype:
            return tensor.to(self.dtype)
        return tensor

    def _whole(self, name: str, value) -> bool:
        """An integer tensor for an input the module does not use as indices: it may want it as floats."""
        return name not in self.index_inputs and np.asarray(value).dtype.kind in "iu"

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
                try:
                    out = self.module(*(self._tensor(inputs[n]) for n in self.input_names))
                except RuntimeError:
                    if not any(self._whole(n, inputs[n]) for n in self.input_names):
                        raise
                    # whole numbers for a module that computes on floats (pixels sent as 0..255)
                    out = self.module(*(self._tensor(inputs[n], self._whole(n, inputs[n])) for n in self.input_names))
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
