"""Which processor a service JSON asks for, and where its files are: checked at create and modify,
so a wrong processor or model fails with a 400 naming the key instead of an instance that cannot
start. The result (``processor_kind`` and its files) is what an instance process loads."""

from __future__ import annotations

import importlib.util
import itertools
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pai_lab.errors import BadInput
from pai_lab.serving.processors.base import read_class_names
from pai_lab.serving.schemas import ServiceSpec

SUPPORTED_PROCESSORS = (
    "tensorflow_cpu_<version>, tensorflow_gpu_<version> or tensorflow (SavedModel), onnx, pmml, "
    "easyvision (a SavedModel taking encoded images), pytorch (TorchScript, with torch "
    "installed), or processor_type python with processor_path and processor_entry"
)

# what a model file of each kind is called, when model_path is a folder
_SUFFIXES = {"onnx": (".onnx",), "pmml": (".pmml", ".xml"), "torch": (".pt", ".pth", ".torchscript")}
# the extra that installs what a processor needs, for the message when it is missing
_NEEDS = {"onnx": ("onnxruntime", "onnx"), "pmml": ("pypmml", "pmml"), "torch": ("torch", "torch")}


def processor_kind(code: str) -> str | None:
    """The local processor for an EAS processor code (``tensorflow_cpu_2.7``, ``pmml``,
    ``easy_vision_cpu_tf1.12_torch151``, ``pytorch_cpu_1.10``...), or None when none serves it."""
    code = code.strip().lower()
    if code.startswith("tensorflow"):
        return "tensorflow"
    if code.startswith("onnx"):
        return "onnx"
    if code == "pmml":
        return "pmml"
    if code.startswith(("easyvision", "easy_vision", "ev_")):
        return "easyvision"
    if code.startswith(("pytorch", "torch")):
        return "torch"
    return None


def uses_model_entry(kind: str | None) -> bool:
    """Whether ``model_entry`` (which file of the model folder) means something to this processor."""
    return kind in ("onnx", "pmml", "torch", "python")


def _installed(kind: str) -> None:
    module, extra = _NEEDS[kind]
    if importlib.util.find_spec(module) is None:
        raise BadInput(
            f'processor {kind!r} needs {module}, which is not installed on the server: pip install "pai_lab[{extra}]"',
            "processor",
        )


def _model_file(kind: str, spec: ServiceSpec, model_dir: Path | None) -> Path:
    if model_dir is None:
        raise BadInput(f"model_path is required for the {kind} processor (the model file or its folder)", "model_path")
    if model_dir.is_file():
        return model_dir
    if spec.model_entry:
        entry = model_dir / spec.model_entry
        if not entry.is_file():
            raise BadInput(f"model_entry {spec.model_entry!r} is not in model_path", "model_entry")
        return entry
    found = sorted(p for p in model_dir.rglob("*") if p.is_file() and p.suffix.lower() in _SUFFIXES[kind])
    if len(found) != 1:
        what = "no" if not found else f"{len(found)}"
        raise BadInput(
            f"model_path holds {what} {'/'.join(_SUFFIXES[kind])} file(s) for the {kind} processor; "
            "name the one to load with model_entry",
            "model_entry" if found else "model_path",
        )
    return found[0]


_CODES = {"onnx": "onnx", "pmml": "pmml", "torch": "pytorch"}


def processor_for_model(path: Path) -> str | None:
    """The processor code that serves the model at ``path`` by its format: ``tensorflow_cpu`` for a
    SavedModel folder, ``pmml`` for a .pmml/.xml file, ``onnx`` for .onnx, ``pytorch`` for TorchScript;
    a folder holding one such file is that file's. None when the format is none of these."""
    if path.is_dir():
        if saved_model_of(path) is not None:
            return "tensorflow_cpu"
        found = [p for p in itertools.islice(path.rglob("*"), 1000) if p.is_file() and processor_for_model(p)]
        return processor_for_model(found[0]) if len(found) == 1 else None
    suffix = path.suffix.lower()
    return next((_CODES[kind] for kind, suffixes in _SUFFIXES.items() if suffix in suffixes), None)


def saved_model_of(folder: Path) -> Path | None:
    if (folder / "saved_model.pb").exists():
        return folder
    for found in sorted(folder.rglob("saved_model.pb")):
        return found.parent
    return None


def resolve_processor(
    spec: ServiceSpec, model_dir: Path | None, fetch_processor: Callable[[str], Path]
) -> dict[str, Any]:
    """The processor's part of a version's resolved form. ``model_dir`` is model_path on this
    machine (a folder or a file); ``fetch_processor`` does the same for processor_path."""
    if spec.processor_type in ("cpp", "java"):
        raise BadInput(
            f"processor_type {spec.processor_type!r} cannot run here; use {SUPPORTED_PROCESSORS}", "processor_type"
        )
    if spec.processor_type == "python":
        if not spec.processor_path or not spec.processor_entry:
            field = "processor_path" if not spec.processor_path else "processor_entry"
            raise BadInput(
                f"{field} is required with processor_type python (the folder or archive and the .py "
                "file with initialize() and process(data))",
                field,
            )
        proc_dir = fetch_processor(spec.processor_path)
        if proc_dir.is_file():
            proc_dir = proc_dir.parent
        if not (proc_dir / spec.processor_entry).is_file():
            raise BadInput(f"processor_entry {spec.processor_entry!r} is not in processor_path", "processor_entry")
        return dict(
            processor_kind="python",
            processor_dir=str(proc_dir),
            processor_entry=spec.processor_entry,
            processor_mainclass=spec.processor_mainclass,
            model_dir=str(model_dir) if model_dir else None,
            model_config=spec.model_config_,
        )
    code = spec.processor or ""
    kind = processor_kind(code)
    if kind is None:
        raise BadInput(f"processor {code or '(none)'!r} is not available here; use {SUPPORTED_PROCESSORS}", "processor")
    if kind in _NEEDS:
        _installed(kind)
        return dict(
            processor_kind=kind, model_file=str(_model_file(kind, spec, model_dir)), model_config=spec.model_config_
        )
    if model_dir is None:
        raise BadInput(f"model_path is required for the {kind} processor (a SavedModel folder)", "model_path")
    saved = saved_model_of(model_dir) if model_dir.is_dir() else None
    if saved is None:
        raise BadInput(
            f"model_path {spec.model_path!r} holds no SavedModel (saved_model.pb); export the model "
            "with tf.saved_model.save or model.export",
            "model_path",
        )
    # the class list: beside the SavedModel, or at the root of the folder given (or one up from a
    # version subfolder such as model/1/, where the job's chief saved it)
    resolved = dict(
        processor_kind=kind, model_dir=str(saved), class_names=read_class_names(saved, model_dir, saved.parent)
    )
    if kind == "easyvision":
        config = spec.model_config_ if isinstance(spec.model_config_, dict) else {}
        threshold = config.get("score_threshold", 0.5)
        if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0 <= threshold <= 1:
            raise BadInput(
                "model_config.score_threshold is the least score of a box the easyvision processor "
                "answers: a number from 0 to 1 (0.5 unless set)",
                "model_config.score_threshold",
            )
        resolved["model_config"] = spec.model_config_
    return resolved
