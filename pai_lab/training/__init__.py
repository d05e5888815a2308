"""Distributed TensorFlow jobs on Dask (PAI-DLC / PAI-TF).

Inside a training script: :func:`report`, :func:`keras_callback`, :func:`model_dir`, :func:`is_chief`.
The control plane side (job specs, the Dask launcher, logs, metrics, the watchdog, models) lives
in the submodules and is not imported here, so a rank loads nothing it does not need.
"""

from pai_lab.training.metrics import (
    is_chief,
    keras_callback,
    model_dir,
    report,
    task_info,
)

__all__ = ["is_chief", "keras_callback", "model_dir", "report", "task_info"]
