"""Pipeline scheduling overhead: no-op steps through a `pai server` against the same functions on Dask.

Two shapes: a chain (each step waits on the one before) and a fan-out (independent steps). Through
pai_lab, each step is a FunctionOperator run by the server's driver: its records in the store, a Dask
task that lays out the step's work folder, and the step itself in the run's warm step runner (a
process of the run's own, so a member's code stays out of the control plane). Straight to Dask, the
same function runs as a task in a LocalCluster of the same shape, measured in the same run.

    python benchmarks/pipeline_overhead.py                    # a 50-step chain, a 200-step fan-out
    python benchmarks/pipeline_overhead.py --chain 10 --fanout 20 --repeat 1

Each shape runs ``--repeat`` times (3), through pai_lab and on bare Dask in turn; the best of each is
reported (a shared machine's load comes and goes). After each run through pai_lab the benchmark waits
``--settle`` seconds (1.5) before bare Dask's turn: a run's end has the server start its spare step
runners again (an interpreter each), which bare Dask must not be measured beside.

Each shape's figures carry the machine's load average when they were taken. Last line: `chain: P s vs
D s (X ms/step); fan-out: P s vs D s (ratio R); N CPUs, load average L (chain taken at Lc, fan-out at
Lf)`. The issue's goal is at most 20 ms a step and 1.5x bare Dask for the fan-out. Times run from
posting the built manifest to the client seeing the run Succeeded: the run's start and the client's
wait for the end included, building the Pipeline in the notebook not.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script, too
from benchmarks.pai_server import start_server


def noop(i: int = 0) -> int:
    return i


def pipeline(n: int, chain: bool):
    from pai_lab.pipelines import FunctionOperator, Pipeline, PipelineParameter

    op = FunctionOperator(
        noop, inputs=[PipelineParameter("i", int, 0)], outputs=[PipelineParameter("out", int)], identifier="noop"
    )
    steps, last = [], None
    for i in range(n):
        step = op.as_step(name=f"s{i}", inputs={"i": last.outputs["out"] if chain and last else i})
        steps.append(step)
        last = step
    return Pipeline(steps=[steps[-1]] if chain else steps)


def bare_dask(n: int, chain: bool) -> float:
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=2, processes=False, dashboard_address=":0") as cluster, Client(cluster) as client:
        client.submit(noop, 0).result()  # warm
        started = time.perf_counter()
        if chain:
            fut = client.submit(noop, 0, pure=False)
            for _ in range(n - 1):
                fut = client.submit(noop, fut, pure=False)
            fut.result()
        else:
            client.gather([client.submit(noop, i, pure=False) for i in range(n)])
        return time.perf_counter() - started


def through_pai(ws, n: int, chain: bool) -> float:
    built = pipeline(n, chain).to_dict()  # the SDK's part (the notebook's), before the clock starts
    started = time.perf_counter()
    run = ws.pipelines.run(built, cache=False, wait=True, show_outputs=False, timeout=3600)
    assert run.detail.status == "Succeeded", run.detail.reason
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--chain", type=int, default=50)
    parser.add_argument("--fanout", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=3, help="runs of each; the best is reported")
    parser.add_argument("--settle", type=float, default=1.5, help="seconds after a pai_lab run before bare Dask's")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="pai-pipeline-bench-"))
    proc, url, token = start_server(root)
    try:
        from pai_lab.client import PaiClient

        ws = PaiClient(url, token).workspace("default")
        through_pai(ws, 2, False)  # warm: the server's Dask cluster starts on the first run
        results = {}
        for shape, n, chain in (("chain", args.chain, True), ("fan-out", args.fanout, False)):
            pai, dask = float("inf"), float("inf")
            for _ in range(max(1, args.repeat)):
                pai = min(pai, through_pai(ws, n, chain))
                time.sleep(args.settle)  # the server's spare runners start again after a run
                dask = min(dask, bare_dask(n, chain))
            results[shape] = {
                "steps": n,
                "pai_s": round(pai, 3),
                "dask_s": round(dask, 3),
                "overhead_ms_per_step": round(1000 * (pai - dask) / n, 1),
                "ratio": round(pai / dask, 2) if dask else None,
                "load_average": round(os.getloadavg()[0], 1),
            }
        results["machine"] = f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}"
        print(json.dumps(results))
        c, f = results["chain"], results["fan-out"]
        print(
            f"chain: {c['pai_s']} s vs {c['dask_s']} s ({c['overhead_ms_per_step']} ms/step); "
            f"fan-out: {f['pai_s']} s vs {f['dask_s']} s (ratio {f['ratio']}); {results['machine']} "
            f"(chain taken at {c['load_average']}, fan-out at {f['load_average']})"
        )
    finally:
        proc.terminate()
        proc.wait(30)
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
