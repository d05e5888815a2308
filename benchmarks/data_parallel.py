"""Data-parallel scaling of pai_lab.whale on this machine: steps/s of 1 rank against 2 ranks on the
same global batch, and the scaling efficiency E(2) = throughput(2) / (2 x throughput(1)).

Each run starts its ranks as processes with TF_CONFIG written here (the 1-rank run: one process, no
TF_CONFIG), trains a dense classifier with ``wh.replica`` / ``rep.distribute`` / ``rep.train_step`` on
generated data, skips the first steps (tracing) and times the rest. On one machine the ranks share its
cores, so E(2) measures what the all-reduce and the second process cost, not what a second machine
would give.

    python benchmarks/data_parallel.py                   # 200 timed steps, global batch 512, twice
    python benchmarks/data_parallel.py --threads 1       # one core a rank, as if each had a machine
    python benchmarks/data_parallel.py --smoke           # a tiny run that checks the harness
"""

from __future__ import annotations

import argparse
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rank(args: argparse.Namespace) -> None:
    """One rank: train ``args.steps`` timed steps after ``args.warmup`` untimed ones; rank 0 prints steps/s."""
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import numpy as np
    import tensorflow as tf
    import tf_keras as keras

    import pai_lab.whale as wh

    if args.threads:
        tf.config.threading.set_intra_op_parallelism_threads(args.threads)
        tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    wh.init()
    with wh.replica() as rep:
        keras.utils.set_random_seed(1)
        layers = [keras.layers.Input(shape=(args.features,))]
        layers += [keras.layers.Dense(args.width, activation="relu") for _ in range(args.depth)]
        model = keras.Sequential([*layers, keras.layers.Dense(10)])
        optimizer = keras.optimizers.SGD(0.01)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(args.global_batch * 4, args.features)).astype("float32")
    y = rng.integers(0, 10, size=len(x))
    data = iter(rep.distribute(tf.data.Dataset.from_tensor_slices((x, y)).repeat(), args.global_batch))
    entropy = keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction="none")
    step = rep.train_step(model, optimizer, lambda m, b: entropy(b[1], m(b[0], training=True)))
    for _ in range(args.warmup):
        rep.reduce(step(next(data)))
    start = time.perf_counter()
    for _ in range(args.steps):
        loss = step(next(data))
    rep.reduce(loss)  # waits for the last step on every replica
    elapsed = time.perf_counter() - start
    if rep.is_chief:
        print(f"steps_per_s={args.steps / elapsed:.4f} replicas={rep.num_replicas}", flush=True)


def launch(ranks: int, args: argparse.Namespace) -> float:
    """Run ``ranks`` rank processes to the end; rank 0's steps/s."""
    hosts = [f"127.0.0.1:{free_port()}" for _ in range(ranks)]
    flags = [
        f"--{k}={getattr(args, k)}"
        for k in ("steps", "warmup", "global_batch", "features", "width", "depth", "threads")
    ]
    procs = []
    for index in range(ranks):
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        env.pop("TF_CONFIG", None)
        if ranks > 1:
            env["TF_CONFIG"] = json.dumps({"cluster": {"worker": hosts}, "task": {"type": "worker", "index": index}})
        procs.append(
            subprocess.Popen(
                [sys.executable, __file__, "--rank", *flags],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    outputs = [p.communicate(timeout=args.timeout) for p in procs]
    for p, (_out, err) in zip(procs, outputs):
        if p.returncode != 0:
            raise SystemExit(f"a rank failed (exit {p.returncode}):\n{err[-3000:]}")
    found = re.search(r"steps_per_s=([\d.]+) replicas=(\d+)", outputs[0][0])
    if not found or int(found[2]) != ranks:
        raise SystemExit(f"rank 0 printed no rate for {ranks} replica(s):\n{outputs[0][0][-2000:]}")
    return float(found[1])


def machine() -> str:
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return f"{os.cpu_count()} CPUs, load average {load:.1f}"


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rank", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--global_batch", type=int, default=512)
    parser.add_argument("--features", type=int, default=784)
    parser.add_argument("--width", type=int, default=512)
    parser.add_argument("--depth", type=int, default=2)
    parser.add_argument("--threads", type=int, default=0, help="TensorFlow threads a rank (0: TensorFlow decides)")
    parser.add_argument(
        "--repeat", type=int, default=2, help="runs of each, alternating (every run's figures, then medians)"
    )
    parser.add_argument("--timeout", type=float, default=600)
    parser.add_argument("--smoke", action="store_true", help="a few steps of a tiny model")
    args = parser.parse_args(argv)
    if args.rank:
        rank(args)
        return {}
    if args.smoke:
        args.steps, args.warmup, args.global_batch, args.features, args.width, args.depth = 5, 2, 16, 8, 8, 1
        args.repeat = 1
    threads = f"{args.threads} thread(s) a rank" if args.threads else "TensorFlow's threads"
    print(
        f"data parallel, global batch {args.global_batch}, {args.steps} timed steps, {threads}; {machine()}", flush=True
    )
    results: dict = {"one": [], "two": [], "efficiency": []}
    for run in range(1, args.repeat + 1):
        one = launch(1, args)
        two = launch(2, args)
        efficiency = two / (2 * one)  # same global batch: throughput is steps/s x batch on both sides
        results["one"].append(one)
        results["two"].append(two)
        results["efficiency"].append(efficiency)
        print(f"run {run}: 1 rank  {one:9.2f} steps/s  {one * args.global_batch:10.0f} examples/s", flush=True)
        print(f"run {run}: 2 ranks {two:9.2f} steps/s  {two * args.global_batch:10.0f} examples/s", flush=True)
        print(f"run {run}: speedup S(2) = {two / one:.3f}, efficiency E(2) = {efficiency:.3f}", flush=True)
    if args.repeat > 1:
        one, two = statistics.median(results["one"]), statistics.median(results["two"])
        print(
            f"median of {args.repeat} runs: 1 rank {one:.2f} steps/s, 2 ranks {two:.2f} steps/s, "
            f"E(2) = {two / (2 * one):.3f} (median of the runs' E(2): {statistics.median(results['efficiency']):.3f})",
            flush=True,
        )
    print(f"after the runs: {machine()}", flush=True)
    return results


if __name__ == "__main__":
    main()
