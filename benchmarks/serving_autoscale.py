"""Autoscaling under a step load: how long p99 latency takes to come back under a target after the
load steps from 1x to 4x one instance's capacity, and how many requests fail while instances are
added and removed; against the same service with a fixed single instance and with fixed 4 instances,
measured in the same run on the same `pai server`.

    python benchmarks/serving_autoscale.py            # about 4 minutes
    python benchmarks/serving_autoscale.py --smoke    # a tiny run: checks that every part still works

The service is a Python processor that holds each request for ``--service-ms`` (20 ms) with one
request at a time per instance (``metadata.workers=1``), so one instance's capacity is
1000 / service-ms requests a second (50) whatever the machine's cores: a model bound by latency
(a GPU, a remote store), which is what adding instances helps. Queues are long
(``rpc.max_queue_size`` 2000, ``rpc.keepalive`` 30 s) so an overloaded instance makes requests wait
before it refuses them (450) or gives them up (408).

The load is open (requests are sent on a fixed schedule, whatever the answers), from a process of
its own: ``--base`` seconds at 1x capacity, ``--peak`` seconds at 4x, ``--after`` seconds at 1x again.
The autoscaler's policy: min 1, max 8, qps threshold 0.7x capacity per instance, scale-up window 0 s,
scale-down window ``--down-window`` s.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script, too
from benchmarks.pai_server import start_server

PROCESSOR = """
import time


class Hold:
    def process(self, data):
        time.sleep({seconds})
        return b'{{"ok": true}}', 200
"""


# --------------------------------------------------------------------------- the load generator


async def _open_load(url: str, token: str, phases: list[tuple[float, float]]) -> dict:
    """Requests sent at each phase's rate (seconds, requests/s): when the schedule started (epoch
    seconds) and (sent at, latency s, status) for each request."""
    import aiohttp

    records: list[tuple[float, float, str]] = []
    headers = {"Authorization": token, "Content-Type": "application/octet-stream"}
    connector = aiohttp.TCPConnector(limit=4000)
    timeout = aiohttp.ClientTimeout(total=120)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

        async def one(offset: float) -> None:
            t0 = time.perf_counter()
            try:
                async with session.post(url, data=b"{}", headers=headers) as resp:
                    await resp.read()
                    status = str(resp.status)
            except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
                status = type(exc).__name__
            records.append((offset, time.perf_counter() - t0, status))

        start, started_at = time.perf_counter(), time.time()
        tasks = []
        at = 0.0
        for seconds, rate in phases:
            end = at + seconds
            n = 0
            while True:
                due = at + n / rate
                if due >= end:
                    break
                delay = start + due - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                tasks.append(asyncio.create_task(one(due)))
                n += 1
            at = end
        await asyncio.gather(*tasks)
    return {"start": started_at, "records": records}


def run_load(url: str, token: str, phases: list[tuple[float, float]]) -> tuple[float, list[tuple[float, float, str]]]:
    total = sum(s for s, _ in phases)
    done = subprocess.run(
        [sys.executable, __file__, "--loadgen", url, token, json.dumps(phases)],
        capture_output=True,
        text=True,
        timeout=total + 300,
    )
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-2000:])
    out = json.loads(done.stdout.strip().splitlines()[-1])
    return out["start"], [tuple(r) for r in out["records"]]


# --------------------------------------------------------------------------- one configuration


def p99(latencies: list[float]) -> float:
    if not latencies:
        return float("nan")
    ordered = sorted(latencies)
    return ordered[min(len(ordered) - 1, math.ceil(0.99 * len(ordered)) - 1)] * 1000


def measure(ws, name: str, processor: Path, args, autoscale: bool, instances: int) -> dict:
    capacity = 1000 / args.service_ms
    svc = ws.services.create(
        {
            "name": name,
            "processor_type": "python",
            "processor_path": str(processor),
            "processor_entry": "app.py",
            "metadata": {
                "instance": instances,
                "workers": 1,
                "rpc": {"max_queue_size": 2000, "keepalive": 30000},
            },
        },
        progress=False,
        timeout=300,
    )
    if autoscale:
        svc.autoscale(1, 8, qps=0.7 * capacity, scale_up_window=0, scale_down_window=args.down_window)
    phases = [(args.base, capacity), (args.peak, 4 * capacity), (args.after, capacity)]
    timeline: list[tuple[float, int, int]] = []
    halt = threading.Event()

    def watch():
        while not halt.is_set():
            info = svc.refresh()
            timeline.append((time.time(), info.instances_total, info.instances_ready))
            halt.wait(0.5)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        load_start, records = run_load(svc.endpoint, svc.token, phases)
    finally:
        halt.set()
        watcher.join(10)
    timeline = [(t - load_start, total, ready) for t, total, ready in timeline]  # on the load's clock
    step, back = args.base, args.base + args.peak
    max_ready = max((ready for t, _, ready in timeline if step <= t < back), default=instances)
    failed = [r for r in records if r[2] != "200"]
    # p99 per second of sending; "back under target": the first second of the 4x phase from which
    # every later second of it stays under
    seconds: dict[int, list[float]] = {}
    for offset, latency, status in records:
        if status == "200":
            seconds.setdefault(int(offset), []).append(latency)
    peak_seconds = list(range(int(step), int(back)))
    over = [s for s in peak_seconds if not p99(seconds.get(s, [])) <= args.target_ms]
    if not over:
        recovered: float | None = 0
    elif over[-1] == peak_seconds[-1]:
        recovered = None  # still over when the peak ended
    else:
        recovered = over[-1] + 1 - step
    result = {
        "name": name,
        "config": f"autoscale 1-8 (qps {0.7 * capacity:g})" if autoscale else f"fixed {instances}",
        "sent": len(records),
        "failed": len(failed),
        "failed_codes": sorted({r[2] for r in failed}),
        "failed_at_peak": sum(1 for r in failed if step <= r[0] < back),
        "failed_after": sum(1 for r in failed if r[0] >= back),
        "p99_base_ms": p99([r[1] for r in records if r[0] < step and r[2] == "200"]),
        "p99_peak_ms": p99([r[1] for r in records if step <= r[0] < back and r[2] == "200"]),
        "p99_peak_last5_ms": p99([r[1] for r in records if back - 5 <= r[0] < back and r[2] == "200"]),
        "p99_after_ms": p99([r[1] for r in records if r[0] >= back and r[2] == "200"]),
        "recovered_s": recovered,
        "instances_max": max((t[1] for t in timeline), default=instances),
        "max_ready": max_ready,
        # from the step until the most instances of the peak were all ready (and so taking traffic)
        "scaled_s": next(
            (round(t - step, 1) for t, total, ready in timeline if t >= step and ready >= max_ready),
            None,
        ),
        "instances_end": timeline[-1][1] if timeline else instances,
        "events": [f"{e.kind} {e.from_instances}->{e.to_instances}" for e in reversed(svc.autoscaler.info.events)]
        if autoscale
        else [],
    }
    svc.delete()
    return result


def report(results: list[dict], args, started: float) -> None:
    capacity = 1000 / args.service_ms
    print(
        f"step load {capacity:g} -> {4 * capacity:g} -> {capacity:g} req/s (1x -> 4x -> 1x one instance's capacity: "
        f"{args.service_ms:g} ms a request, one at a time), {args.base:g} s / {args.peak:g} s / {args.after:g} s; "
        f"p99 target {args.target_ms:g} ms"
    )
    print(f"machine: {os.cpu_count()} CPUs, load average {', '.join(f'{x:.1f}' for x in os.getloadavg())}")
    head = (
        f"{'config':<26}{'sent':>6}{'failed':>8}{'p99 1x':>9}{'p99 4x':>10}{'4x last 5s':>11}"
        f"{'p99 back':>10}{'back under after':>18}{'max inst':>9}{'most ready at':>15}{'end inst':>9}"
    )
    print(head)
    for r in results:
        back = "never" if r["recovered_s"] is None else f"{r['recovered_s']:g} s"
        ready = "-" if r["scaled_s"] is None or r["events"] == [] else f"{r['max_ready']} at {r['scaled_s']:g} s"
        print(
            f"{r['config']:<26}{r['sent']:>6}{r['failed']:>8}{r['p99_base_ms']:>9.0f}{r['p99_peak_ms']:>10.0f}"
            f"{r['p99_peak_last5_ms']:>11.0f}{r['p99_after_ms']:>10.0f}{back:>18}{r['instances_max']:>9}"
            f"{ready:>15}{r['instances_end']:>9}"
        )
    for r in results:
        if r["failed"]:
            print(f"{r['config']}: failed {r['failed']} ({', '.join(r['failed_codes'])}), {r['failed_at_peak']} at 4x")
        if r["events"]:
            print(f"{r['config']}: scale events {', '.join(r['events'])}")
    print(f"total {time.time() - started:.0f} s")


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="tiny run: checks that every part works")
    parser.add_argument("--service-ms", type=float, default=20.0, help="how long the processor holds a request")
    parser.add_argument("--base", type=float, default=10.0, help="seconds at 1x before the step")
    parser.add_argument("--peak", type=float, default=40.0, help="seconds at 4x")
    parser.add_argument("--after", type=float, default=30.0, help="seconds at 1x after the peak")
    parser.add_argument("--down-window", type=int, default=10, help="the policy's scale-down window, seconds")
    parser.add_argument("--target-ms", type=float, default=200.0, help="the p99 latency target")
    parser.add_argument("--configs", default="auto,fixed1,fixed4", help="which to run: auto, fixed1, fixed4")
    parser.add_argument("--loadgen", nargs=3, metavar=("URL", "TOKEN", "PHASES"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.loadgen:
        url, token, phases = args.loadgen
        print(json.dumps(asyncio.run(_open_load(url, token, [tuple(p) for p in json.loads(phases)]))))
        return []
    if args.smoke:
        args.base, args.peak, args.after, args.down_window, args.service_ms = 1.0, 4.0, 1.0, 1, 50.0
        # the fixed-4 baseline takes the fixed-1 path with more instances: the smoke run leaves it out
        args.configs = args.configs.replace(",fixed4", "")
    started = time.time()
    work = Path(tempfile.mkdtemp(prefix="pai-autoscale-bench-"))
    processor = work / "processor"
    processor.mkdir()
    (processor / "app.py").write_text(PROCESSOR.format(seconds=args.service_ms / 1000))
    (work / "root").mkdir()
    proc, url, token = start_server(work / "root", "--allowed-root", str(processor))
    results = []
    try:
        from pai_lab.client import PaiClient

        ws = PaiClient(url, token).workspace("default")
        wanted = args.configs.split(",")
        configs = [c for c in (("auto", True, 1), ("fixed1", False, 1), ("fixed4", False, 4)) if c[0] in wanted]

        def run(config: tuple[str, bool, int]) -> dict:
            key, autoscale, instances = config
            return measure(ws, f"bench_{key}", processor, args, autoscale, instances)

        if args.smoke:  # figures that mean nothing: the configurations run side by side, each its own service
            with ThreadPoolExecutor(len(configs)) as pool:
                results = list(pool.map(run, configs))
        else:
            results = [run(config) for config in configs]
        report(results, args, started)
        return results
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
