"""What a training script calls inside a rank: report metrics, find where to save the model.

    import pai_lab.training as pai
    pai.report(step=100, loss=0.31, accuracy=0.92)         # a custom loop
    model.fit(..., callbacks=[pai.keras_callback()])        # tf_keras or Keras 3
    model.save(pai.model_dir())                             # the chief's copy is registered

Points travel to the control plane over a pipe the rank runtime opened for this process; they are
also written as TensorBoard scalars under the job's output folder. Outside a job, they are printed.
"""

from __future__ import annotations

import importlib
import json
import math
import os
import sys
import tempfile
import threading
import time
from typing import Any

_lock = threading.Lock()
_stream = None
_writer = None


def _metrics_stream():
    global _stream
    if _stream is None:
        fd = os.environ.get("PAI_LAB_METRICS_FD")
        if fd is None:
            return None
        try:
            _stream = os.fdopen(int(fd), "w", buffering=1, closefd=False)
        except OSError:
            return None
    return _stream


def _tensorboard_writer():
    """A TensorBoard writer for this rank, if TensorFlow is already loaded (never imported here)."""
    global _writer
    if _writer is None and "tensorflow" in sys.modules and os.environ.get("PAI_LAB_OUTPUT_DIR"):
        tf = sys.modules["tensorflow"]
        pod = os.environ.get("PAI_LAB_POD", "local")
        role_index = pod.rsplit("-", 2)[-2:]
        logdir = os.path.join(os.environ["PAI_LAB_OUTPUT_DIR"], "tensorboard", "-".join(role_index))
        try:
            _writer = tf.summary.create_file_writer(logdir)
        except Exception:  # noqa: BLE001 - summaries are a convenience; never fail training for them
            _writer = False
    return _writer or None


def report(step: int, **metrics: float) -> None:
    """Record metric values at ``step`` for this rank (numbers only; others are skipped)."""
    values = {}
    for name, value in metrics.items():
        try:
            number = float(value)
        except (TypeError, ValueError):
            continue
        if math.isfinite(number):
            values[name] = number
    point = {"step": int(step), "time": time.time(), "metrics": values}
    with _lock:
        stream = _metrics_stream()
        if stream is None:
            print(f"[metrics] step {int(step)}: " + ", ".join(f"{k}={v:.6g}" for k, v in values.items()), flush=True)
        else:
            stream.write(json.dumps(point) + "\n")
            stream.flush()
        writer = _tensorboard_writer()
        if writer is not None:
            tf = sys.modules["tensorflow"]
            try:
                with writer.as_default():
                    for name, number in values.items():
                        tf.summary.scalar(name, number, step=int(step))
                writer.flush()
            except Exception:  # noqa: BLE001, S110
                pass


def is_chief() -> bool:
    """True in the rank that owns the job's outputs (the chief, else worker 0); True outside a job."""
    return os.environ.get("PAI_LAB_IS_CHIEF", "1") == "1"


def model_dir() -> str:
    """Where to save the SavedModel. Every MultiWorkerMirroredStrategy rank must call save; only the
    chief's folder is the job's, the others write to a throw-away folder."""
    target = os.environ.get("PAI_LAB_MODEL_DIR") or os.path.join(os.getcwd(), "model")
    if is_chief():
        return target
    return tempfile.mkdtemp(prefix=f"pai-model-{os.environ.get('PAI_LAB_POD', 'rank')}-")


def task_info() -> dict:
    """This rank's role, index and the number of training ranks (from the job's environment)."""
    return {
        "job_id": os.environ.get("PAI_LAB_JOB_ID"),
        "pod": os.environ.get("PAI_LAB_POD"),
        "role": os.environ.get("PAI_LAB_ROLE", "worker"),
        "index": int(os.environ.get("PAI_LAB_TASK_INDEX", "0")),
        "num_workers": int(os.environ.get("PAI_LAB_NUM_WORKERS", "1")),
    }


def keras_callback(every_n_batches: int = 10, keras=None, all_ranks: bool = False):
    """A Keras callback that reports what Keras logs: every ``every_n_batches`` batches (Keras' running
    means over the epoch so far, without ``epoch``) and at each epoch's end (the epoch's logs, validation
    included, with ``epoch`` counted from 1). Under MultiWorkerMirroredStrategy the values are already
    reduced over the ranks, so only the chief reports (``all_ranks=True``: every rank does, which a chart
    adding points of one step would double). Works with tf_keras and Keras 3: pass the module, or it is
    taken from the loaded ones."""
    if keras is None:
        legacy = os.environ.get("TF_USE_LEGACY_KERAS") == "1" or "keras" not in sys.modules
        keras = sys.modules.get("tf_keras") if legacy and "tf_keras" in sys.modules else None
        if keras is None:
            keras = importlib.import_module("keras")
    base: Any = keras.callbacks.Callback  # tf_keras's or Keras 3's, known at run time
    reporting = all_ranks or is_chief()

    class PaiLabMetrics(base):
        def __init__(self):
            super().__init__()
            self.step = 0

        def on_train_batch_end(self, batch, logs=None):
            self.step += 1
            if reporting and every_n_batches and self.step % every_n_batches == 0 and logs:
                report(self.step, **{k: v for k, v in logs.items() if k != "epoch"})

        def on_epoch_end(self, epoch, logs=None):
            if reporting:
                report(self.step, **{**(logs or {}), "epoch": epoch + 1})

    return PaiLabMetrics()
