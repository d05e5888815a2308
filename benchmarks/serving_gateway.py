"""Serving throughput and latency: the pai_lab gateway against a minimal tornado handler and the
model called in-process, all on this machine, loopback only.

    python benchmarks/serving_gateway.py              # about 2 minutes
    python benchmarks/serving_gateway.py --smoke      # seconds: checks that every part still runs
    python benchmarks/serving_gateway.py --loop both --rounds 3 --concurrency 1 64   # uvloop against asyncio

The model is fixed: float32 [None, 784] -> Dense(512, relu) -> Dense(512, relu) -> Dense(10,
softmax), seeded, exported as a SavedModel. The loads come from wrk (installed from Debian's
packages when missing; `--smoke` never installs), a fixed number of connections for a fixed time,
in a process of its own; without wrk the Python client (aiohttp) runs them, and says so. Every
figure is printed with the machine's load average at its end and the CPU its load generator took.

Measured:
- one sample per request at concurrency 1, 16, 64: req/s, p50, p99, errors, for the gateway
  (batching on) and the minimal handler (one model call per JSON request), each on every event loop
  asked for (`--loop`: asyncio's own, uvloop, or both, the default where uvloop is installed; the
  gateway's loop is set by PAI_LAB_GATEWAY_LOOP). Ratios are against the stronger tornado baseline
  of the row; `--rounds N` measures the rows N times, each round starting with the next server, and
  keeps each server's median; at the top concurrency also the gateway's TF Serving REST path
  (`/v1/models/bench:predict`, row format `instances`);
- 64 samples per request (8 connections, on the last loop measured): samples/s against the in-process limit at batch 64,
  over EAS JSON, TF Serving REST rows and Open Inference v2 binary tensors (the last once more from
  the Python client, as `tritonclient` users send it, with that client's CPU);
- the median overhead at concurrency 1 over the model's own time at batch 1;
- BentoML (adaptive batching, max batch 64, access log off) under the same loads, when a Python
  with `bentoml` is given (`--bentoml-python`, or the PAI_LAB_BENCH_BENTOML_PYTHON variable, or this
  one if it can import bentoml). BentoML is not a dependency: it pins its own stack, so it belongs
  in a virtual environment of its own, e.g. `python -m venv --system-site-packages bentovenv &&
  bentovenv/bin/pip install bentoml` (the system site gives it this machine's TensorFlow).
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script, too
from benchmarks.http_loads import find_wrk, machine, run_load
from benchmarks.serving_report import event_loops, loops_for, report

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

FEATURES = 784


def export_model(folder: Path, hidden: int) -> None:
    import tensorflow as tf
    import tf_keras as keras

    keras.utils.set_random_seed(42)
    model = keras.Sequential(
        [
            keras.layers.Dense(hidden, activation="relu", input_shape=(FEATURES,)),
            keras.layers.Dense(hidden, activation="relu"),
            keras.layers.Dense(10, activation="softmax"),
        ]
    )

    @tf.function(input_signature=[tf.TensorSpec([None, FEATURES], tf.float32, name="images")])
    def predict_images(images):
        return {"scores": model(images)}

    tf.saved_model.save(model, str(folder), signatures={"predict_images": predict_images})


def in_process_limits(folder: Path, seconds: float) -> dict[int, float]:
    """Samples/s of the signature called directly, at batch 1 and 64."""
    import numpy as np
    import tensorflow as tf

    fn = tf.saved_model.load(str(folder)).signatures["predict_images"]
    out = {}
    for batch in (1, 64):
        x = tf.constant(np.random.default_rng(0).random((batch, FEATURES), dtype=np.float32))
        fn(images=x)
        n, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            fn(images=x)["scores"].numpy()
            n += 1
        out[batch] = n * batch / (time.perf_counter() - start)
    return out


# --------------------------------------------------------------------------- the baseline server

BASELINE = """
import json, os, sys
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import numpy as np, tensorflow as tf
from tornado import ioloop, web
if sys.argv[3] == "uvloop":
    import asyncio, uvloop
    asyncio.set_event_loop(uvloop.new_event_loop())
fn = tf.saved_model.load(sys.argv[1]).signatures["predict_images"]

class Predict(web.RequestHandler):
    def post(self):
        x = np.asarray(json.loads(self.request.body)["inputs"]["images"], dtype=np.float32)
        self.finish(json.dumps({"outputs": {"scores": fn(images=tf.constant(x))["scores"].numpy().tolist()}}))

import logging; logging.getLogger("tornado.access").setLevel(logging.ERROR)
web.Application([(r"/predict", Predict)]).listen(int(sys.argv[2]), "127.0.0.1")
print("ready", flush=True)
ioloop.IOLoop.current().start()
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_baseline(folder: Path, loop: str) -> tuple[subprocess.Popen, str]:
    """Started now, on ``loop`` (asyncio or uvloop); ``wait_baseline`` blocks until it serves."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-c", BASELINE, str(folder), str(port), loop],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    return proc, f"http://127.0.0.1:{port}/predict"


def wait_baseline(proc: subprocess.Popen) -> None:
    if proc.stdout.readline().strip() != "ready":
        raise RuntimeError("the baseline server did not start")


BENTO_SERVICE = """
import os
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import bentoml
import numpy as np


@bentoml.service(workers=1, logging={"access": {"enabled": False}}, traffic={"timeout": 60})
class Bench:
    def __init__(self):
        import tensorflow as tf

        self.tf = tf
        self.fn = tf.saved_model.load(os.environ["PAI_BENCH_MODEL"]).signatures["predict_images"]

    @bentoml.api(batchable=True, max_batch_size=64)
    def predict(self, images: np.ndarray) -> np.ndarray:
        return self.fn(images=self.tf.constant(images.astype(np.float32)))["scores"].numpy()
"""


def bentoml_python(given: str | None) -> str | None:
    candidate = given or os.environ.get("PAI_LAB_BENCH_BENTOML_PYTHON")
    if candidate:
        return candidate
    try:
        import bentoml  # noqa: F401
    except ImportError:
        return None
    return sys.executable


def start_bentoml(python: str, folder: Path, work: Path) -> tuple[subprocess.Popen, str]:
    (work / "service.py").write_text(BENTO_SERVICE)
    port = free_port()
    proc = subprocess.Popen(
        [python, "-m", "bentoml", "serve", "service:Bench", "--host", "127.0.0.1", "--port", str(port)],
        cwd=work,
        env=dict(os.environ, PAI_BENCH_MODEL=str(folder)),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    return proc, f"http://127.0.0.1:{port}/predict"


def wait_bentoml(proc: subprocess.Popen, url: str) -> None:
    import requests

    deadline = time.time() + 300
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"bentoml serve exited with {proc.returncode}")
        try:
            if (
                requests.post(
                    url, data=bento_body(1), headers={"Content-Type": "application/json"}, timeout=10
                ).status_code
                == 200
            ):
                return
        except requests.RequestException:
            pass
        time.sleep(0.5)
    raise RuntimeError("the BentoML service did not start")


def start_gateway(folder: Path, state_dir: Path, loop: str, source: Path | None = None):
    """The gateway process on its own, on ``loop``, given one service the way the control plane gives it;
    ``source``: the pai_lab of that source tree (gateway and instance) instead of this one.
    Returns (process, endpoint, token, wait): ``wait()`` blocks until the instance is ready."""
    import requests

    secret = secrets.token_hex(8)
    state_dir.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, PAI_LAB_GATEWAY_SECRET=secret, PAI_LAB_GATEWAY_LOOP=loop)
    if source is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(source), *filter(None, [env.get("PYTHONPATH")])])
    proc = subprocess.Popen(
        [sys.executable, "-m", "pai_lab.serving.gateway", "--state-dir", str(state_dir)],
        env=env,
        cwd=source,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    ready = state_dir / "gateway.json"
    while not ready.exists():
        if proc.poll() is not None:
            raise RuntimeError(f"the gateway on {loop} exited with {proc.returncode}")
        time.sleep(0.05)
    base = f"http://127.0.0.1:{json.loads(ready.read_text())['port']}"
    token = "bench-token"
    rpc = {
        "batching": True,
        "keepalive": 5000,
        "io_threads": 4,
        "max_batch_size": 64,
        "max_batch_timeout": 5,
        "max_queue_size": 1024,
        "worker_threads": None,
    }
    state = {
        "services": [
            {
                "name": "bench",
                "state": "Running",
                "instance": 1,
                "workers": 2,
                "rpc": rpc,
                "cpu": None,
                "memory": None,
                "version": 1,
                "revision": "0" * 40,
                "warm_up": [],
                "processor": {"processor_kind": "tensorflow", "model_dir": str(folder)},
            }
        ],
        "routes": {"bench": {"token": token, "targets": {"bench": 100}}},
    }
    headers = {"X-Pai-Lab-Gateway-Secret": secret}
    requests.put(base + "/_admin/state", json=state, headers=headers).raise_for_status()

    def wait():
        deadline = time.time() + 300
        while requests.get(base + "/_admin/status", headers=headers).json()["services"]["bench"]["state"] != "Running":
            if time.time() > deadline:
                raise RuntimeError("the benchmark service did not start")
            time.sleep(0.2)

    return proc, base + "/api/predict/bench", token, wait


# --------------------------------------------------------------------------- request bodies


def body_for(rows: int) -> bytes:
    import numpy as np

    x = np.random.default_rng(1).random((rows, FEATURES), dtype=np.float32).round(4)
    return json.dumps({"inputs": {"images": x.tolist()}}).encode()


def bento_body(rows: int) -> bytes:
    import numpy as np

    x = np.random.default_rng(1).random((rows, FEATURES), dtype=np.float32).round(4)
    return json.dumps({"images": x.tolist()}).encode()


def binary_v2_body(rows: int) -> tuple[bytes, dict]:
    """An Open Inference v2 request with the tensor as raw bytes (Triton's binary extension)."""
    import numpy as np

    x = np.random.default_rng(1).random((rows, FEATURES), dtype=np.float32)
    head = json.dumps(
        {
            "inputs": [
                {
                    "name": "images",
                    "shape": [rows, FEATURES],
                    "datatype": "FP32",
                    "parameters": {"binary_data_size": x.nbytes},
                }
            ],
            "outputs": [{"name": "scores", "parameters": {"binary_data": True}}],
        }
    ).encode()
    return head + x.tobytes(), {
        "Inference-Header-Content-Length": str(len(head)),
        "Content-Type": "application/octet-stream",
    }


def tf_rows_body(rows: int) -> bytes:
    """The same samples as TF Serving's row format: ``{"instances": [[...], ...]}``."""
    import numpy as np

    x = np.random.default_rng(1).random((rows, FEATURES), dtype=np.float32).round(4)
    return json.dumps({"instances": x.tolist()}).encode()


# --------------------------------------------------------------------------- main


def measure_rows(servers: dict, body: bytes, conc: int, rounds: int, load) -> dict:
    """One row: each server ``name -> (url, headers)`` under the same load, ``rounds`` times, each round
    starting with the next server; a server's result is its median round by req/s."""
    names = list(servers)
    runs: dict[str, list] = {name: [] for name in names}
    for r in range(rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            url, headers = servers[name]
            runs[name].append(load(url, body, headers, conc))
        if rounds > 1:
            base = max(runs[n][-1]["rps"] for n in names if n.startswith("tornado")) or 1e-9
            ratios = ", ".join(f"{n} {runs[n][-1]['rps'] / base:.2f}x" for n in names)
            print(f"round {r + 1}, concurrency {conc}, vs the stronger tornado: {ratios}", flush=True)
    return {name: sorted(rs, key=lambda x: x["rps"])[len(rs) // 2] for name, rs in runs.items()}


def stop_servers(procs: list[subprocess.Popen], work: Path) -> None:
    """Ends every server a benchmark started (15 s each to go, then killed) and removes its work folder."""
    for proc in procs:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
    shutil.rmtree(work, ignore_errors=True)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="tiny run: checks that every part works")
    parser.add_argument("--seconds", type=float, default=8.0, help="load duration per measurement")
    parser.add_argument("--bentoml-python", help="a Python that can import bentoml (see above)")
    parser.add_argument(
        "--loop",
        choices=["asyncio", "uvloop", "both"],
        help="the event loop(s) of the gateway and the tornado baseline (both where uvloop is installed)",
    )
    parser.add_argument("--rounds", type=int, default=1, choices=range(1, 11), metavar="1..10", help="rounds per row")
    parser.add_argument("--concurrency", type=int, nargs="+", choices=range(1, 1025), metavar="1..1024")
    args = parser.parse_args(argv)

    seconds = 1.0 if args.smoke else args.seconds
    concurrencies = args.concurrency or ([1, 4] if args.smoke else [1, 16, 64])
    hidden = 32 if args.smoke else 512
    loops = loops_for(args.loop, args.smoke)
    main_loop = loops[-1]
    print(f"machine: {machine()}", flush=True)
    wrk = find_wrk(install=not args.smoke)
    print(
        f"load generator: wrk ({wrk}) for plain HTTP loads; the Python client (aiohttp) for the one row marked so"
        if wrk
        else "load generator: wrk is not installed (apt-get install wrk); the Python client (aiohttp) runs every load",
        flush=True,
    )
    print(f"event loops: {event_loops(loops)}", flush=True)
    work = Path(tempfile.mkdtemp(prefix="pai-bench-"))
    procs = []
    bento = None
    try:
        export_model(work / "model", hidden)
        # the servers load TensorFlow while the in-process limit is measured; measuring waits for them
        baselines, gateways = {}, {}
        for loop in loops:
            proc, baselines[loop] = start_baseline(work / "model", loop)
            procs.append(proc)
            proc, url, token, gateway_wait = start_gateway(work / "model", work / f"gateway-{loop}", loop)
            procs.append(proc)
            gateways[loop] = (url, gateway_wait)
        bento_python = bentoml_python(args.bentoml_python)
        if bento_python:
            bento, bento_url = start_bentoml(bento_python, work / "model", work)
            procs.append(bento)
        for proc in procs[: 2 * len(loops) : 2]:
            wait_baseline(proc)
        for _, gateway_wait in gateways.values():
            gateway_wait()
        if bento is not None:
            wait_bentoml(bento, bento_url)
        limits = in_process_limits(work / "model", min(seconds, 3.0))
        json_headers = {"Content-Type": "application/json"}
        ours = {**json_headers, "Authorization": token}
        gateway_url, baseline_url = gateways[main_loop][0], baselines[main_loop]
        tf_url = gateway_url.replace("/api/predict/bench", "/v1/models/bench:predict")

        def load(url, body, headers, conc, python_client=False):
            return run_load(url, body, headers, conc, seconds, wrk, python_client)

        one = body_for(1)
        results: dict = {"in_process_samples_per_s": limits, "one_sample": {}, "batch64": {}, "machine": machine()}
        results["loops"] = loops
        servers = {f"tornado {loop}": (baselines[loop], json_headers) for loop in loops}
        servers.update({f"pai_lab {loop}": (gateways[loop][0], ours) for loop in loops})
        for conc in concurrencies:
            row = results["one_sample"][conc] = measure_rows(servers, one, conc, args.rounds, load)
            if bento is not None:
                row["bentoml"] = load(bento_url, bento_body(1), json_headers, conc)
        top = max(concurrencies)
        results["one_sample"][top]["pai_lab TF REST"] = load(tf_url, tf_rows_body(1), ours, top)
        big = body_for(64)
        big_conc = 2 if args.smoke else 8
        v2_body, v2_headers = binary_v2_body(64)
        v2_url = gateway_url.replace("/api/predict/bench", "/v2/models/bench/infer")
        v2_headers["Authorization"] = token
        results["batch64"] = {
            "tornado JSON": load(baseline_url, big, json_headers, big_conc),
            "pai_lab EAS JSON": load(gateway_url, big, ours, big_conc),
            "pai_lab TF REST rows": load(tf_url, tf_rows_body(64), ours, big_conc),
            "pai_lab v2 binary": load(v2_url, v2_body, v2_headers, big_conc),
        }
        if wrk:  # the v2 binary load as a Python client sends it, that client's CPU shown beside it
            results["batch64"]["pai_lab v2 binary, Python client"] = load(v2_url, v2_body, v2_headers, big_conc, True)
        if bento is not None:
            results["batch64"]["BentoML JSON"] = load(bento_url, bento_body(64), json_headers, big_conc)
            results["bentoml"] = "measured (adaptive batching, max batch 64, access log off)"
        else:
            results["bentoml"] = "no Python with bentoml given; not measured"
        report(results, hidden)
        return results
    finally:
        if bento is not None:  # bentoml serve runs its workers as children: end the whole group
            os.killpg(bento.pid, 15)
        stop_servers(procs, work)


if __name__ == "__main__":
    main()
