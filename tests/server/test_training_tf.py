"""Real TensorFlow: a 2-worker MultiWorkerMirroredStrategy job matches a 1-worker run; its model is registered."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "training"

pytestmark = pytest.mark.tf


def _weights(job) -> list[np.ndarray]:
    model = Path(job.output_dir) / "model"
    return [np.array(w) for w in json.loads((model / "weights.json").read_text())]


def test_two_mwms_workers_train_the_same_weights_as_one_with_the_same_global_batch(live_server):
    ws = live_server.client().workspace("default")
    command = "python /root/code/digits_mwms.py --epochs=2 --samples=512 --global_batch=64"
    two = ws.jobs.submit(name="digits", command=command, workers=2, code_source=str(EXAMPLES))
    two.wait(timeout=240, poll=0.5)
    assert two.state == "Succeeded", two.reason + "\n" + two.logs(0)[-3000:]
    one = ws.jobs.submit(name="digits", command=command, workers=1, code_source=str(EXAMPLES))
    one.wait(timeout=240, poll=0.5)
    assert one.state == "Succeeded", one.reason

    for a, b in zip(_weights(two), _weights(one), strict=True):
        assert a.shape == b.shape
        np.testing.assert_allclose(a, b, atol=1e-5, rtol=0)
    assert not np.allclose(_weights(one)[0], 0)

    # the Keras callback fed the run record from both ranks; TensorBoard files are in the output folder
    frame = two.metrics()
    assert set(frame["pod"]) == {f"{two.id}-worker-0", f"{two.id}-worker-1"}
    assert {"loss", "accuracy", "epoch"} <= set(frame.columns)
    assert list(Path(two.output_dir, "tensorboard").rglob("events.out.tfevents.*"))

    # the chief's SavedModel became a model version, reachable by job id, name:version and name
    assert two.model == f"digits:{int(two.model.split(':')[1])}"
    by_job = ws.models.get(two.id)
    assert Path(by_job.path, "saved_model.pb").is_file() and by_job.job_id == two.id
    assert ws.models.get(two.model).path == by_job.path
    assert ws.models.get("digits").version == by_job.version + 1  # the 1-worker run registered the next
    listed = {(m.name, m.version) for m in ws.models.list()}
    assert ("digits", by_job.version) in listed
