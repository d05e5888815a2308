"""Launch overhead of `pai dlc submit` against two hand-started processes with TF_CONFIG.

The same 2-worker MultiWorkerMirroredStrategy script (a few hundred steps) runs twice in this
process's run: once as two subprocesses with TF_CONFIG written by hand, once through
`pai dlc submit tfjob --workers=2` on a `pai server` with its Dask LocalCluster. Printed: wall time,
steps/s and time from launch to the first training step, and the ratios (goal: <= 1.05x).

    python benchmarks/training_overhead.py                 # ~300 steps, real TensorFlow
    python benchmarks/training_overhead.py --plain --steps 20   # harness check, no TensorFlow
    python benchmarks/training_overhead.py --url URL --token T  # use a running server
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script, too
from benchmarks.pai_server import free_port, start_server

TF_SCRIPT = r"""
import os, sys, time
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import numpy as np, tensorflow as tf
steps = int(sys.argv[1])
strategy = tf.distribute.MultiWorkerMirroredStrategy()
with strategy.scope():
    w = tf.Variable(tf.zeros([64, 10]))
    opt = tf.keras.optimizers.SGD(0.1)
x = tf.random.stateless_normal([64, 64], seed=[1, 2]); y = tf.random.stateless_normal([64, 10], seed=[3, 4])
@tf.function
def step():
    def replica():
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean((tf.matmul(x, w) - y) ** 2)
        opt.apply_gradients([(tape.gradient(loss, w), w)])
        return loss
    return strategy.run(replica)
step()
print(f"first_step_at={time.time():.6f}", flush=True)
start = time.perf_counter()
for _ in range(steps):
    step()
print(f"steps_per_s={steps / (time.perf_counter() - start):.3f}", flush=True)
"""

PLAIN_SCRIPT = r"""
import json, os, sys, time
steps = int(sys.argv[1])
json.loads(os.environ["TF_CONFIG"])
print(f"first_step_at={time.time():.6f}", flush=True)
start = time.perf_counter()
for _ in range(steps):
    time.sleep(0.002)
print(f"steps_per_s={steps / (time.perf_counter() - start):.3f}", flush=True)
"""


def parse(text: str) -> tuple[float, float]:
    first = min(float(v) for v in re.findall(r"first_step_at=([\d.]+)", text))
    rate = min(float(v) for v in re.findall(r"steps_per_s=([\d.]+)", text))
    return first, rate


def by_hand(script: Path, steps: int) -> dict:
    hosts = [f"127.0.0.1:{free_port()}" for _ in range(2)]
    launched = time.time()
    procs = []
    for index in range(2):
        env = dict(
            os.environ, TF_CONFIG=json.dumps({"cluster": {"worker": hosts}, "task": {"type": "worker", "index": index}})
        )
        procs.append(
            subprocess.Popen(
                [sys.executable, str(script), str(steps)],
                env=env,
                text=True,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
            )
        )
    outputs = [p.communicate()[0] for p in procs]
    wall = time.time() - launched
    if any(p.returncode for p in procs):
        raise SystemExit("hand-launched run failed:\n" + "\n".join(o[-2000:] for o in outputs))
    first, rate = parse("\n".join(outputs))
    return {"wall_s": wall, "steps_per_s": rate, "first_step_s": first - launched}


def through_pai(script: Path, steps: int, url: str, token: str) -> dict:
    env = dict(os.environ, PAI_LAB_URL=url, PAI_LAB_TOKEN=token)
    launched = time.time()
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pai_lab",
            "dlc",
            "submit",
            "tfjob",
            "--name=overhead",
            "--workers=2",
            f"--command=python {script} {steps}",
            "--json",
        ],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    wall = time.time() - launched
    if done.returncode != 0:
        raise SystemExit(f"pai dlc submit failed ({done.returncode}):\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    job = json.loads(done.stdout)
    from pai_lab.client import PaiClient

    jobs = PaiClient(url, token).workspace("default").jobs.get(job["id"])
    first, rate = parse(jobs.logs(None))
    return {"wall_s": wall, "steps_per_s": rate, "first_step_s": first - launched, "job": job["id"]}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--plain", action="store_true", help="a stdlib-only stand-in script (harness check)")
    parser.add_argument("--url")
    parser.add_argument("--token", default="")
    parser.add_argument(
        "--work",
        help="folder for the job's script, one the server's ranks can see (with --url: "
        "inside its root or allowed roots); default: a new temporary folder",
    )
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="pai-bench-", dir=args.work))
    script = work / "steps.py"
    script.write_text(PLAIN_SCRIPT if args.plain else TF_SCRIPT)
    server = None
    url, token = args.url, args.token
    if not url:
        (work / "root").mkdir()
        server, url, token = start_server(work / "root")
    try:
        through_pai(script, min(args.steps, 5), url, token)  # warm up: the cluster starts lazily
        hand = by_hand(script, args.steps)
        pai = through_pai(script, args.steps, url, token)
    finally:
        if server is not None:
            server.terminate()
            server.wait(60)
    result = {
        "steps": args.steps,
        "script": "plain" if args.plain else "tensorflow-mwms",
        "hand": hand,
        "pai": pai,
        "wall_ratio": pai["wall_s"] / hand["wall_s"],
        "steps_per_s_ratio": hand["steps_per_s"] / pai["steps_per_s"],
        "first_step_extra_s": pai["first_step_s"] - hand["first_step_s"],
    }
    print(f"2-worker MWMS, {args.steps} steps ({result['script']})")
    print(
        f"  by hand : wall {hand['wall_s']:.2f} s, {hand['steps_per_s']:.1f} steps/s, "
        f"first step after {hand['first_step_s']:.2f} s"
    )
    print(
        f"  pai dlc : wall {pai['wall_s']:.2f} s, {pai['steps_per_s']:.1f} steps/s, "
        f"first step after {pai['first_step_s']:.2f} s"
    )
    print(
        f"  ratio pai/hand: wall {result['wall_ratio']:.3f}x, time per step {result['steps_per_s_ratio']:.3f}x, "
        f"first step +{result['first_step_extra_s']:.2f} s"
    )
    return result


if __name__ == "__main__":
    main()
