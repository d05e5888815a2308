"""The ``tensorflow`` processor: every signature of one SavedModel, with ``label`` and ``score`` added
where the model answers class probabilities and a class list is saved beside it."""

from __future__ import annotations

import numpy as np

from pai_lab.serving.processors.base import (
    DT_NAMES,
    LABEL_OUTPUTS,
    PROBABILITIES,
    ProcessorError,
    read_class_names,
)

ALIGN = 64  # what TensorFlow's CPU kernels take as it is (the instance reads tensors into such memory)


def _tensor(tf, arr):
    """``arr`` as a tensor: its own memory taken over through DLPack (no copy) where TensorFlow can
    use it as it is (a numeric, C-ordered, writable array starting on an ALIGN-byte boundary, as the
    instance's request tensors are), else copied by ``tf.constant``."""
    if (
        isinstance(arr, np.ndarray)
        and arr.dtype.kind in "fiu"
        and arr.size
        and arr.flags.c_contiguous
        and arr.flags.writeable
        and arr.ctypes.data % ALIGN == 0
    ):
        try:
            return tf.experimental.dlpack.from_dlpack(arr.__dlpack__())
        except (BufferError, TypeError, ValueError, tf.errors.InvalidArgumentError):
            pass  # a dtype or layout this TensorFlow does not import: the copy below
    return tf.constant(arr)


def _flat_inputs(fn) -> list | None:
    """The signature's inputs as (name, TensorSpec) in the order its graph takes them, for calling it
    without binding keyword arguments to its structured signature on every call (a tenth of a
    millisecond a call); None where the function is not that plain (then it is called by keyword)."""
    try:
        params = list(fn.function_type.parameters.values())
        fn._call_flat, fn.captured_inputs  # noqa: B018 - both are there, or the keyword call it is
    except AttributeError:
        return None
    kinds = {p.kind for p in params}
    if not params or kinds != {params[0].KEYWORD_ONLY} or not all(_is_spec(p.type_constraint) for p in params):
        return None
    return [(p.name, p.type_constraint) for p in params]


def _is_spec(constraint) -> bool:
    import tensorflow as tf

    return type(constraint) is tf.TensorSpec


def _fits(tensor, spec) -> bool:
    return tensor is not None and tensor.dtype == spec.dtype and spec.shape.is_compatible_with(tensor.shape)


def _spec_json(spec) -> dict:
    shape = None if spec.shape.rank is None else [-1 if d is None else int(d) for d in spec.shape.as_list()]
    return {"name": None, "shape": shape, "type": DT_NAMES.get(spec.dtype.name, "DT_" + spec.dtype.name.upper())}


class TensorFlowProcessor:
    """Serves every signature of one SavedModel."""

    kind = "tensorflow"

    def __init__(self, model_dir: str, class_names: list[str] | None = None):
        import tensorflow as tf

        self._tf = tf
        self.model = tf.saved_model.load(model_dir)
        self.signatures = dict(self.model.signatures)
        self._flat = {name: _flat_inputs(fn) for name, fn in self.signatures.items()}
        if not self.signatures:
            raise ProcessorError(
                400,
                f"the SavedModel at {model_dir} has no signatures; export it with one "
                "(tf.saved_model.save(model, path, signatures=...))",
            )
        self.class_names = class_names if class_names is not None else read_class_names(model_dir)
        self.signature_json = {name: self._describe(name, fn) for name, fn in self.signatures.items()}
        # with a class list, a signature answering class probabilities [N, C] also answers `label`
        # (the arg-max class's name) and `score` (its probability)
        self.label_source = {
            name: src for name, sig in self.signature_json.items() if (src := self._probabilities_of(sig)) is not None
        }
        for name in self.label_source:
            self.signature_json[name]["outputs"] += list(LABEL_OUTPUTS.values())
        self.default_signature = (
            "serving_default" if "serving_default" in self.signatures else sorted(self.signatures)[0]
        )

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
        fits = [
            o
            for o in outputs.values()
            if o["type"] in ("DT_FLOAT", "DT_DOUBLE", "DT_HALF")
            and o["shape"] is not None
            and len(o["shape"]) == 2
            and o["shape"][1] in (-1, len(self.class_names))
        ]
        if PROBABILITIES in outputs:
            return PROBABILITIES if outputs[PROBABILITIES] in fits else None
        return fits[0]["name"] if len(fits) == 1 else None

    def predict(
        self, signature_name: str | None, inputs: dict[str, np.ndarray], output_filter: list[str] | None = None
    ) -> dict[str, np.ndarray]:
        name = signature_name or self.default_signature
        fn = self.signatures.get(name)
        if fn is None:
            raise ProcessorError(
                400, f"unknown signature_name {name!r}; the model has: {', '.join(sorted(self.signatures))}"
            )
        tf = self._tf
        feeds = {k: _tensor(tf, v) for k, v in inputs.items()}
        flat = self._flat.get(name)
        if flat is not None and len(flat) == len(feeds) and all(_fits(feeds.get(n), spec) for n, spec in flat):
            out = fn._call_flat([feeds[n] for n, _ in flat], fn.captured_inputs)
        else:  # anything else (a missing input, another dtype or shape) gets TensorFlow's own checks and message
            out = fn(**feeds)
        source = self.label_source.get(name)
        extra = list(LABEL_OUTPUTS) if source else []
        names = output_filter or [*out, *extra]
        missing = [n for n in names if n not in out and n not in extra]
        if missing:
            raise ProcessorError(
                400, f"unknown output {missing[0]!r} in output_filter; outputs are: {', '.join(sorted([*out, *extra]))}"
            )
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
