"""Scale-out: the same 2-rank job on one host and on two hosts (network namespaces), through pai_lab.

Hosts are Linux network namespaces on a bridge (tests/netns_hosts.py; needs root and iproute2), each with
an address of its own and a mount namespace that hides this run's files. The Dask scheduler runs on host
a; "one host" is one worker with 2 threads on host b (both ranks talk over its loopback), "two hosts" a
worker with 1 thread on each of hosts b and c (the ranks talk over the bridge). A `pai server` on this side
is pointed at the scheduler; the job's code travels zipped with the launch. Printed per run: launch time
(submit to the first training step), steps/s (the slower rank), wall (submit to Succeeded), each with the
machine and its load average, and the ratios two hosts / one host.

    python benchmarks/scale_out.py                 # 300 steps of a 2-worker MultiWorkerMirroredStrategy job
    python benchmarks/scale_out.py --runs 3        # three rounds
    python benchmarks/scale_out.py --smoke         # harness check: a stdlib stand-in, 20 steps

Beside each job, :func:`serving_throughput` measures one service (2 instances of a small Python processor,
16 connections for 10 s, 2 s in the smoke run): on "one host" its instances are the gateway's own processes
(the default group), on "two hosts" they run on the workers' hosts (a workspace on a resource group of the
same scheduler), reached over TCP across the bridge; req/s, p50 and p99, each with the machine and its load.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script, too
from benchmarks import mwms_steps
from benchmarks.pai_server import start_server
from tests import netns_hosts

LAYOUTS = {"one host": (("b",), 2), "two hosts": (("b", "c"), 1)}  # workers, threads per worker


def machine() -> str:
    one, five, fifteen = os.getloadavg()
    return f"[{platform.node()}, {os.cpu_count()} CPUs, load average {one:.2f} {five:.2f} {fifteen:.2f}]"


def run_job(url: str, token: str, code: Path, steps: int, options: str = "") -> dict:
    from pai_lab.client import PaiClient

    ws = PaiClient(url, token).workspace("default")
    launched = time.time()
    job = ws.jobs.submit(
        name="scale-out", workers=2, code_source=str(code), command=f"python steps.py {steps} {options}".strip()
    )
    job.wait(timeout=600, poll=0.2)
    wall = time.time() - launched
    logs = job.logs(None)
    if job.state != "Succeeded":
        raise SystemExit(f"job {job.id} ended {job.state}: {job.reason}\n{logs[-3000:]}")
    first = min(float(v) for v in re.findall(r"first_step_at=([\d.]+)", logs))
    rate = min(float(v) for v in re.findall(r"steps_per_s=([\d.]+)", logs))
    return {
        "launch_s": first - launched,
        "steps_per_s": rate,
        "wall_s": wall,
        "hosts": sorted({p.host for p in job.pods}),
        "machine": machine(),
    }


SERVING_PROCESSOR = """
import json, os


class Echo:
    def process(self, data):
        values = json.loads(data)["values"]
        return json.dumps({"sum": sum(values), "pid": os.getpid()}).encode(), 200
"""


def serving_throughput(
    url: str, token: str, where: str, folder: Path | None = None, seconds: float = 10.0, concurrency: int = 16
) -> dict | None:
    """Requests/s of one service (2 instances of a small Python processor: the serving path's own cost)
    served from this machine's gateway (``where="local"``: the default group) or from the workers' hosts
    (``"workers"``: a workspace on a resource group of the default group's scheduler, so the gateway
    reaches each instance over TCP). ``folder``: where the processor is written (inside the server's
    root). Each figure comes with the machine and its load average."""
    from benchmarks.http_loads import find_wrk, run_load
    from pai_lab.client import PaiClient

    client = PaiClient(url, token)
    workspace = "default"
    if where == "workers":
        groups = {g.name: g for g in client.resource_groups}
        if "serving-workers" not in groups:
            client.resource_groups.add("serving-workers", groups["default"].scheduler_address)
        if "serving_bench" not in [w.name for w in client.workspaces()]:
            client.create_workspace("serving_bench")
        client.workspace("serving_bench").set_resource_group("serving-workers")
        workspace = "serving_bench"
    code = Path(tempfile.mkdtemp(dir=folder, prefix="echo-"))
    (code / "app.py").write_text(SERVING_PROCESSOR)
    spec = {
        "name": f"echo_{where}",
        "processor_type": "python",
        "processor_path": str(code),
        "processor_entry": "app.py",
        "processor_mainclass": "Echo",
        "metadata": {"instance": 2, "workers": 8, "rpc": {"max_queue_size": 1024}},
    }
    svc = client.workspace(workspace).services.create(spec, timeout=300, progress=False)
    try:
        body, headers = b'{"values": [1, 2, 3]}', {"Authorization": svc.token}
        run_load(svc.endpoint, body, headers, concurrency, min(seconds, 2.0), find_wrk(False))  # warm
        result = run_load(svc.endpoint, body, headers, concurrency, seconds, find_wrk(False))
        hosts = sorted({(i.host_ip if i.worker else "gateway") for i in svc.instances()})
        return {
            "where": where,
            "rps": result["rps"],
            "p50_ms": result["p50_ms"],
            "p99_ms": result["p99_ms"],
            "errors": result["errors"],
            "instances_on": hosts,
            "concurrency": concurrency,
            "machine": machine(),
        }
    finally:
        svc.delete()


def measure(
    hosts: netns_hosts.Hosts, work: Path, layout: str, code: Path, steps: int, warm: bool, options: str
) -> dict:
    workers, threads = LAYOUTS[layout]
    logs = work / f"logs-{layout.replace(' ', '-')}"
    logs.mkdir(exist_ok=True)
    with netns_hosts.dask_on_hosts(hosts, logs, scheduler="a", workers=workers, nthreads=threads) as address:
        root = Path(tempfile.mkdtemp(dir=work, prefix="root-"))
        code = Path(shutil.copytree(code, root / "code"))  # a code_source inside the server's root
        server, url, token = start_server(root, "--dask-scheduler", address)
        try:
            if warm:  # the workers' first task imports pai_lab's rank runtime: not part of a job's launch
                run_job(url, token, code, min(steps, 5), options)
            result = run_job(url, token, code, steps, options)
            where = "local" if layout == "one host" else "workers"
            result["serving"] = serving_throughput(url, token, where, folder=root, seconds=10.0 if warm else 2.0)
            return result
        finally:
            server.terminate()
            server.wait(60)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--plain", action="store_true", help="a stdlib-only stand-in for the TensorFlow job")
    parser.add_argument("--smoke", action="store_true", help="--plain --steps 20, no warm-up job")
    args = parser.parse_args(argv)
    if args.smoke:
        args.plain, args.steps = True, min(args.steps, 20)
    why = netns_hosts.unavailable()
    if why:
        raise SystemExit(f"cannot make hosts here: {why}")
    work = Path(tempfile.mkdtemp(prefix="pai-scale-out-"))
    code = work / "code"
    code.mkdir()
    mwms_steps.write_to(code)
    options = "--plain" if args.plain else "--inputs 256 --units 64 --rate 0.01"  # a 256x64 dense layer
    rounds = []
    try:
        with netns_hosts.Hosts(["a", "b", "c"], hide=[work]) as hosts:
            for _ in range(args.runs):
                rounds.append(
                    {
                        layout: measure(hosts, work, layout, code, args.steps, not args.smoke, options)
                        for layout in LAYOUTS
                    }
                )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    script = "plain" if args.plain else "tensorflow-mwms"
    print(f"2-rank job, {args.steps} steps ({script}); hosts are network namespaces on one machine")
    for n, result in enumerate(rounds, 1):
        for layout, r in result.items():
            print(
                f"run {n}: {layout:9} launch {r['launch_s']:.2f} s, {r['steps_per_s']:.1f} steps/s, "
                f"wall {r['wall_s']:.2f} s, ranks on {', '.join(r['hosts'])} {r['machine']}"
            )
            sv = r["serving"]
            print(
                f"run {n}: {layout:9} serving {sv['where']}: {sv['rps']:.0f} req/s, p50 {sv['p50_ms']:.2f} ms, "
                f"p99 {sv['p99_ms']:.2f} ms at {sv['concurrency']} connections, errors {sv['errors'] or 0}, "
                f"instances on {', '.join(sv['instances_on'])} {sv['machine']}"
            )
        one, two = result["one host"], result["two hosts"]
        print(
            f"run {n}: two/one   launch {two['launch_s'] - one['launch_s']:+.2f} s, "
            f"steps/s {two['steps_per_s'] / one['steps_per_s']:.3f}x, wall {two['wall_s'] / one['wall_s']:.3f}x "
            f"{machine()}"
        )
    return {"steps": args.steps, "script": script, "rounds": rounds}


if __name__ == "__main__":
    main()
