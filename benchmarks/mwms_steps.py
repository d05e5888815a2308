"""One rank of the training benchmarks' 2-worker MultiWorkerMirroredStrategy job.

The one copy of the script that benchmarks/training_overhead.py (started by hand with TF_CONFIG, and
through `pai dlc submit`) and benchmarks/scale_out.py (one host, two hosts) run: each copies this file
into the job's folder (:func:`write_to`) and runs ``python steps.py STEPS [options]`` on every rank.

A dense layer (``--inputs`` x ``--units``, SGD at ``--rate``) trained with its gradients all-reduced over
the ranks that TF_CONFIG names. It prints ``first_step_at=<epoch seconds>`` after the first (traced)
step, then ``steps_per_s=<rate> peers=<the ranks' addresses>`` after ``STEPS`` more. ``--plain``: a
stdlib-only stand-in (2 ms sleeps for steps) that checks the harness without TensorFlow.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path


def write_to(folder: Path, name: str = "steps.py") -> Path:
    """This script, copied into ``folder`` (the job's code or work folder) as ``name``."""
    return Path(shutil.copyfile(__file__, Path(folder) / name))


def _plain_step() -> Callable[[], object]:
    return lambda: time.sleep(0.002)


def _tf_step(inputs: int, units: int, rate: float) -> Callable[[], object]:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    with strategy.scope():
        w = tf.Variable(tf.zeros([inputs, units]))
        opt = tf.keras.optimizers.SGD(rate)
    x = tf.random.stateless_normal([64, inputs], seed=[1, 2])
    y = tf.random.stateless_normal([64, units], seed=[3, 4])

    @tf.function
    def step():
        def replica():
            with tf.GradientTape() as tape:
                loss = tf.reduce_mean((tf.matmul(x, w) - y) ** 2)
            opt.apply_gradients([(tape.gradient(loss, w), w)])  # all-reduced over the ranks
            return loss

        return strategy.run(replica)

    return step


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("steps", type=int)
    parser.add_argument("--inputs", type=int, default=64, help="the layer's inputs (default 64)")
    parser.add_argument("--units", type=int, default=10, help="the layer's units (default 10)")
    parser.add_argument("--rate", type=float, default=0.1, help="SGD learning rate (default 0.1)")
    parser.add_argument("--plain", action="store_true", help="a stdlib stand-in, no TensorFlow")
    args, _pai_flags = parser.parse_known_args(argv)  # pai adds --job_name, --task_index... (PAI-TF's flags)
    peers = json.loads(os.environ["TF_CONFIG"])["cluster"]["worker"]
    step = _plain_step() if args.plain else _tf_step(args.inputs, args.units, args.rate)
    step()
    print(f"first_step_at={time.time():.6f}", flush=True)
    start = time.perf_counter()
    for _ in range(args.steps):
        step()
    rate = args.steps / (time.perf_counter() - start)
    print(f"steps_per_s={rate:.3f} peers={','.join(peers)}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
