"""Whale data parallel through pai_lab's training door: a real 2-rank job (MultiWorkerMirroredStrategy on the
server's Dask cluster) of a script written with pai_lab.whale trains, with each rank taking half of every
global batch, the weights one plain process trains with the whole global batch: with SGD, with AdagradDecay
decaying its accumulators every 10 steps (tf_keras and Keras 3), and with Whale's fp16 gradient exchange to
float16's precision."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "training"
SCRIPT = EXAMPLES / "whale_mnist_like.py"

pytestmark = pytest.mark.tf


def _weights(folder: Path) -> list[np.ndarray]:
    with np.load(folder / "weights.npz") as saved:
        return [saved[f"arr_{i}"] for i in range(len(saved.files))]


@pytest.fixture(scope="module")
def alone_runs(tmp_path_factory):
    """flags -> a function waiting for one plain process of the script trained with those flags and the whole
    global batch, returning (its output folder, its stdout). Started when first asked for, so it runs beside
    the job; cases with the same flags (the fp16 exchange is a variable of the job's ranks only) share it."""
    runs: dict[str, tuple[subprocess.Popen, Path]] = {}
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TF_CONFIG", "PAI_LAB_"))}
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[2])

    def start(flags: str):
        if flags not in runs:
            output = tmp_path_factory.mktemp("alone")
            command = [sys.executable, str(SCRIPT), *flags.split(), "--num_micro_batch=1", f"--output={output}"]
            with open(output / "stdout", "w") as out, open(output / "stderr", "w") as err:
                runs[flags] = (subprocess.Popen(command, stdout=out, stderr=err, env=env), output)
        proc, output = runs[flags]

        def result() -> tuple[Path, str]:
            assert proc.wait(timeout=240) == 0, (output / "stderr").read_text()[-3000:]
            return output, (output / "stdout").read_text()

        return result

    yield start
    for proc, _ in runs.values():
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.parametrize(
    ("variables", "optimizer", "tolerance"),
    [
        ("", "--learning_rate=0.2", 1e-5),
        ("", "--optimizer=adagrad_decay --accumulator_decay_step=10 --learning_rate=0.05", 1e-5),
        # Keras 3 (its model.fit fails across ranks; wh's train step does not), with its AdagradDecay
        ("", "--keras=3 --optimizer=adagrad_decay --accumulator_decay_step=10 --learning_rate=0.05", 1e-5),
        # Whale's variables in the command: gradients cross the ranks as float16 (x64), in 3 packs
        ("WHALE_COMMUNICATION_DENSE_FP16=True WHALE_COMMUNICATION_FP16_SCALE=64 WHALE_COMMUNICATION_NUM_SPLITS=3 ",
         "--learning_rate=0.2", 1e-3),
    ],
    ids=["sgd", "adagrad_decay", "keras3_adagrad_decay", "sgd_fp16_exchange"],
)  # fmt: skip
def test_two_ranks_with_half_batches_train_the_weights_of_one_process_with_the_whole_batch(
    live_server, alone_runs, variables, optimizer, tolerance
):
    ws = live_server.client().workspace("default")
    flags = f"--steps=40 --global_batch=32 --num_micro_batch=2 {optimizer}"
    alone = alone_runs(flags)  # the one process trains while the job's ranks do
    job = ws.jobs.submit(
        name="whale-dp",
        workers=2,
        code_source=str(EXAMPLES),
        command=f"{variables}python /root/code/{SCRIPT.name} {flags}",
    )
    job.wait(timeout=240, poll=0.5)
    assert job.state == "Succeeded", job.reason + "\n" + job.logs(0)[-3000:]
    for index in (0, 1):
        assert f"rank {index} of 2, 2 replica(s), 16 examples a replica a step in 2 micro-batch(es)" in job.logs(index)
    frame = job.metrics()
    assert set(frame["pod"]) == {f"{job.id}-worker-0"}  # values reduced over the replicas: the chief reports
    assert list(frame["step"]) == [40] and 0 < frame["loss"].iloc[0] < 2.0  # trained: ln 10 = 2.3 at the start

    output, stdout = alone()
    assert "rank 0 of 1, 1 replica(s), 32 examples a replica a step in 1 micro-batch(es)" in stdout
    # the loss both ranks reduced (GLOBAL_MEAN_OBJECTS over the replicas) is the one process's whole-batch loss
    alone_loss = float(re.search(r"step 40: loss=([\d.]+)", stdout)[1])
    assert frame["loss"].iloc[0] == pytest.approx(alone_loss, abs=2 * tolerance)

    two, one = _weights(Path(job.output_dir)), _weights(output)
    assert [w.shape for w in two] == [(64, 32), (32,), (32, 10), (10,)] == [w.shape for w in one]
    for a, b in zip(two, one):
        np.testing.assert_allclose(a, b, atol=tolerance, rtol=0)
    if variables:  # float16 rounding shows: the variables reached the all-reduce
        assert max(np.abs(a - b).max() for a, b in zip(two, one)) > 1e-6
