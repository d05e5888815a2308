"""The steps every Keras script of a job repeats around ``model.fit``, written once.

    fit = pai.fit_inputs(strategy, train, val, global_batch=32)   # x, steps_per_epoch, validation_*
    model.fit(**fit, epochs=30, callbacks=[pai.keras_callback()])
    pai.save_model(model, signatures={"serving_default": serve}, class_names=names)

TensorFlow is not imported here: the datasets and the model bring it.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from pai_lab.training import job_storage
from pai_lab.training.metrics import is_chief, model_dir
from pai_lab.training.reader import save_class_names


def _distributed(strategy, ds, global_batch: int, prepare: Callable | None):
    def make(context):
        # The reader already gave this rank its share; repeat so no epoch runs out of data.
        part = ds.map(prepare) if prepare is not None else ds
        return part.repeat().batch(context.get_per_replica_batch_size(global_batch))

    return strategy.distribute_datasets_from_function(make)


def fit_inputs(strategy, train, validation=None, *, global_batch: int, prepare: Callable | None = None) -> dict:
    """``model.fit`` arguments for datasets from :func:`pai_lab.training.dataset` under ``strategy``:
    each rank's share repeated and batched to ``global_batch`` over all ranks, with the steps per epoch
    every rank agrees on (from the items of all ranks). Validation is left out when some rank would
    have no item of it. ``prepare`` maps each element first (e.g. boxes to fixed slots)."""
    args = {
        "x": _distributed(strategy, train, global_batch, prepare),
        "steps_per_epoch": max(1, math.ceil(train.total_count / global_batch)),
    }
    if validation is not None and validation.total_count >= strategy.num_replicas_in_sync:
        args["validation_data"] = _distributed(strategy, validation, global_batch, prepare)
        args["validation_steps"] = max(1, math.ceil(validation.total_count / global_batch))
    return args


def save_model(model, *, signatures: dict | None = None, class_names: list[str] | None = None) -> str:
    """Save the SavedModel where the job keeps it (every rank must save under MultiWorkerMirroredStrategy;
    only the chief's copy is the job's), with ``class_names.json`` beside it; return the folder. On an
    external cluster with an ``s3://`` checkpointDir the chief's copy is also uploaded to
    ``<checkpointDir>/model``, where the job's model is registered from."""
    target = model_dir()
    model.save(target, save_format="tf", signatures=signatures)
    if is_chief():
        if class_names is not None:
            save_class_names(list(class_names), target)
        uri = job_storage.model_uri_here()  # a rank on another host: the job keeps its model on S3
        if uri:
            job_storage.upload(target, uri)
        print(f"saved the model to {uri or target}", flush=True)
    return target
