"""Distributed TensorFlow jobs on Dask (PAI-DLC / PAI-TF).

Inside a training script: :func:`dataset`, :func:`class_names`, :func:`save_class_names` (the job's
``--data_sources``), :func:`fit_inputs`, :func:`save_model`, :func:`report`, :func:`keras_callback`,
:func:`model_dir`, :func:`is_chief`.
The control plane side (job specs, the Dask launcher, logs, metrics, the watchdog, models) lives
in the submodules and is not imported here, so a rank loads nothing it does not need.
"""

from pai_lab.training.fitting import fit_inputs, save_model
from pai_lab.training.metrics import (
    is_chief,
    keras_callback,
    model_dir,
    report,
    task_info,
)
from pai_lab.training.reader import class_names, dataset, save_class_names, source_info

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
