"""One check for a machine with an NVIDIA GPU: does training use the card, and how fast is it there.

Names the card (``nvidia-smi``), then:

1. trains the image-classification example (``examples/training/cifar_pai.py``) at a small size on
   generated CIFAR-format batches, as one rank, and prints its images/s (start-up included) and accuracy;
2. times the example's network under no strategy, ``MirroredStrategy`` on one GPU and
   ``MultiWorkerMirroredStrategy`` with one rank (no TF_CONFIG), the same global batch each, and prints
   samples/s for each and which device ran the steps;
3. runs the data-parallel benchmark (``benchmarks/data_parallel.py``: pai_lab.whale, 1 rank against 2).

Every run is its own process and sees one card (``CUDA_VISIBLE_DEVICES`` = the first, unless set). On a
machine without a GPU it says "no GPU" and prints the same figures on CPU. Each figure line ends with
the machine and its load average at that moment.

    python benchmarks/gpu_check.py            # the check (a few minutes on a GPU)
    python benchmarks/gpu_check.py --smoke    # tiny sizes, on CPU in CI: checks the harness
"""

from __future__ import annotations

import argparse
import os
import pickle
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "training" / "cifar_pai.py"
STRATEGIES = ("none", "mirrored", "mwms")


def card() -> str:
    """The first GPU as nvidia-smi names it, or "" when there is none."""
    if shutil.which("nvidia-smi") is None:
        return ""
    query = ["nvidia-smi", "--query-gpu=name,memory.total,driver_version", "--format=csv,noheader"]
    try:
        done = subprocess.run(query, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    lines = [line.strip() for line in done.stdout.splitlines() if line.strip()]
    return lines[0] if done.returncode == 0 and lines else ""


def machine() -> str:
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return f"{os.cpu_count()} CPUs, load average {load:.1f}"


def environment() -> dict:
    env = dict(os.environ, PYTHONPATH=str(ROOT), TF_USE_LEGACY_KERAS="1", TF_CPP_MIN_LOG_LEVEL="2")
    env.pop("TF_CONFIG", None)  # one rank each: the strategies' own defaults
    env.setdefault("CUDA_VISIBLE_DEVICES", "0")
    return env


def write_cifar(folder: Path, per_batch: int) -> int:
    """CIFAR-10's python batches (5 training, 1 test) of random pictures; the training image count."""
    import numpy as np

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    names = [f"class{i}".encode() for i in range(10)]
    for name in [f"data_batch_{n}" for n in range(1, 6)] + ["test_batch"]:
        labels = rng.integers(0, 10, per_batch)
        data = rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8)
        data[:, :1024] = (labels[:, None] * 25).astype(np.uint8)  # the red plane says the class: learnable
        with open(folder / name, "wb") as f:
            pickle.dump({b"data": data, b"labels": labels.tolist()}, f, protocol=2)
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({b"label_names": names}, f, protocol=2)
    return 5 * per_batch


def run_example(args: argparse.Namespace, work: Path) -> None:
    images = write_cifar(work / "cifar-10-batches-py", args.per_batch)
    env = environment()
    for key, sub in (("PAI_LAB_MODEL_DIR", "model"), ("PAI_LAB_OUTPUT_DIR", "output")):
        env[key] = str(work / sub)
    command = [sys.executable, str(EXAMPLE), f"--buckets={work / 'cifar-10-batches-py'}"]
    command += [f"--epochs={args.epochs}", f"--global_batch={args.batch}"]
    start = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=args.timeout)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"the example failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
    accuracy = re.findall(r" accuracy: ([\d.]+)", done.stdout + done.stderr)
    rate = images * args.epochs / elapsed
    print(
        f"example cifar_pai.py: {args.epochs} epoch(s) of {images} images in {elapsed:.1f} s = {rate:.1f} images/s "
        f"(start-up included), last accuracy {accuracy[-1] if accuracy else '?'}; {machine()}",
        flush=True,
    )


def strategy_rate(args: argparse.Namespace) -> None:
    """In a process of its own: the example's network, ``args.strategy``, samples/s over timed steps."""
    import tensorflow as tf
    import tf_keras as keras

    gpus = tf.config.list_physical_devices("GPU")
    if args.strategy == "mirrored":
        strategy = tf.distribute.MirroredStrategy(["/gpu:0" if gpus else "/cpu:0"])
    elif args.strategy == "mwms":
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
    else:
        strategy = tf.distribute.get_strategy()
    keras.utils.set_random_seed(7)
    with strategy.scope():
        model = keras.Sequential(
            [
                keras.layers.Input(shape=(32, 32, 3)),
                keras.layers.Rescaling(1 / 255.0),
                keras.layers.Conv2D(16, 3, activation="relu", padding="same"),
                keras.layers.MaxPooling2D(),
                keras.layers.Conv2D(32, 3, activation="relu", padding="same"),
                keras.layers.MaxPooling2D(),
                keras.layers.Flatten(),
                keras.layers.Dense(64, activation="relu"),
                keras.layers.Dense(10),
            ]
        )
        optimizer = keras.optimizers.Adam(0.001)
    entropy = keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction="none")
    x = tf.random.uniform((args.batch, 32, 32, 3), 0, 255, seed=1)
    y = tf.random.uniform((args.batch,), 0, 10, dtype=tf.int64, seed=2)
    data = iter(strategy.experimental_distribute_dataset(tf.data.Dataset.from_tensors((x, y)).repeat()))

    @tf.function
    def step(batch):
        def replica(images, labels):
            with tf.GradientTape() as tape:
                logits = model(images, training=True)
                loss = tf.nn.compute_average_loss(entropy(labels, logits), global_batch_size=args.batch)
            grads = tape.gradient(loss, model.trainable_variables)
            optimizer.apply_gradients(zip(grads, model.trainable_variables))
            return loss

        return strategy.reduce("SUM", strategy.run(replica, args=batch), axis=None)

    for _ in range(args.warmup):
        step(next(data)).numpy()
    start = time.perf_counter()
    for _ in range(args.steps):
        loss = step(next(data))
    loss.numpy()  # the last step has run
    elapsed = time.perf_counter() - start
    device = model.trainable_variables[0].device or "?"
    print(f"samples_per_s={args.steps * args.batch / elapsed:.2f} device={device}", flush=True)


def run_strategies(args: argparse.Namespace) -> dict[str, float]:
    rates = {}
    flags = [f"--steps={args.steps}", f"--warmup={args.warmup}", f"--batch={args.batch}"]
    commands = {name: [sys.executable, __file__, f"--strategy={name}", *flags] for name in STRATEGIES}
    # a smoke run's figures mean nothing: without a card (which each process would claim whole) its three
    # processes start together, so their TensorFlow start-ups overlap; a real run times each strategy alone
    pipes = {"env": environment(), "stdout": subprocess.PIPE, "stderr": subprocess.PIPE, "text": True}
    together = args.smoke and not card()
    running = {name: subprocess.Popen(commands[name], **pipes) for name in STRATEGIES} if together else {}
    for name in STRATEGIES:
        if name in running:
            out, err = running[name].communicate(timeout=args.timeout)
            done = subprocess.CompletedProcess(commands[name], running[name].returncode, out, err)
        else:
            done = subprocess.run(commands[name], timeout=args.timeout, **pipes)
        found = re.search(r"samples_per_s=([\d.]+) device=(\S+)", done.stdout)
        if done.returncode != 0 or not found:
            raise SystemExit(f"the {name} run failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
        rates[name] = float(found[1])
        label = {"none": "no strategy", "mirrored": "MirroredStrategy, 1 device", "mwms": "MWMS, 1 rank"}[name]
        print(
            f"strategy {label:28s} {rates[name]:10.1f} samples/s  (global batch {args.batch}, variables on "
            f"{found[2]}); {machine()}",
            flush=True,
        )
    return rates


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--strategy", choices=STRATEGIES, help=argparse.SUPPRESS)
    parser.add_argument("--steps", type=int, default=200, help="timed steps a strategy")
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--batch", type=int, default=256, help="global batch")
    parser.add_argument("--epochs", type=int, default=2, help="the example's epochs")
    parser.add_argument("--per_batch", type=int, default=2000, help="images in each CIFAR batch file")
    parser.add_argument("--timeout", type=float, default=900)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: checks the harness")
    args = parser.parse_args(argv)
    if args.strategy:
        strategy_rate(args)
        return {}
    if args.smoke:
        args.steps, args.warmup, args.batch, args.epochs, args.per_batch = 3, 1, 8, 1, 16
    name = card()
    print(f"GPU: {name}" if name else "GPU: no GPU (nvidia-smi finds none): the figures below are CPU's", flush=True)
    print(f"machine: {machine()}", flush=True)
    with tempfile.TemporaryDirectory() as work:
        run_example(args, Path(work))
    rates = run_strategies(args)
    bench = [sys.executable, str(ROOT / "benchmarks" / "data_parallel.py")]
    bench += ["--smoke"] if args.smoke else ["--repeat", "1"]
    print("data_parallel.py:", flush=True)
    done = subprocess.run(bench, env=environment(), text=True, timeout=args.timeout)
    if done.returncode != 0:
        raise SystemExit(f"data_parallel.py failed (exit {done.returncode})")
    return rates


if __name__ == "__main__":
    main()
