"""Distributed TensorFlow jobs on Dask (PAI-DLC / PAI-TF).

Inside a training script: :func:`dataset`, :func:`class_names`, :func:`save_class_names` (the job's
``--data_sources``), :func:`fit_inputs`, :func:`save_model`, :func:`report`, :func:`keras_callback`,
:func:`model_dir`, :func:`is_chief`.
The control plane side (job specs, the Dask launcher, logs, metrics, the watchdog, models) lives
in the submodules and is not imported here, so a rank loads nothing it does not need. The helpers
above load on first use, so the control plane's imports of a submodule (the CLI's) load none of them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pai_lab.training.fitting import fit_inputs, save_model
    from pai_lab.training.metrics import is_chief, keras_callback, model_dir, report, task_info
    from pai_lab.training.reader import class_names, dataset, save_class_names, source_info

_WHERE = {
    "fit_inputs": "fitting",
    "save_model": "fitting",
    "is_chief": "metrics",
    "keras_callback": "metrics",
    "model_dir": "metrics",
    "report": "metrics",
    "task_info": "metrics",
    "class_names": "reader",
    "dataset": "reader",
    "save_class_names": "reader",
    "source_info": "reader",
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        import importlib

        return getattr(importlib.import_module(f"pai_lab.training.{_WHERE[name]}"), name)
    raise AttributeError(f"module 'pai_lab.training' has no attribute {name!r}")


__all__ = [
    "class_names",
    "dataset",
    "fit_inputs",
    "is_chief",
    "keras_callback",
    "model_dir",
    "report",
    "save_class_names",
    "save_model",
    "source_info",
    "task_info",
]
