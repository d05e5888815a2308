"""The Open Inference v2 binary row of the serving benchmark on its own, with the CPU each process
spends on a request: 64 samples per request as raw FP32 bytes (Triton's binary extension), 8
connections from wrk, the same model, service and gateway settings as benchmarks/serving_gateway.py
(one instance, 2 workers, batching on), against the model's in-process limit at batch 64.

    python benchmarks/serving_binary.py --rounds 5                  # this tree's gateway
    python benchmarks/serving_binary.py --against HEAD~1 --rounds 6  # beside an earlier revision's
    python benchmarks/serving_binary.py --smoke                     # seconds: checks that it runs

With ``--against REV`` the gateway of that git revision (its pai_lab, exported with ``git archive``,
instance included) serves the same model beside this tree's, and the two are measured in turns (each
round starting with the other), so that their ratio is taken under the same load. Every figure is
printed with the machine's load average at its end and the CPU per request of the gateway process and
of the instance process (user + system, system alone), read from /proc.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script, too
from benchmarks.http_loads import find_wrk, machine, run_load
from benchmarks.serving_gateway import binary_v2_body, export_model, in_process_limits, start_gateway, stop_servers

ROOT = Path(__file__).resolve().parents[1]

ROWS = 64
CONNECTIONS = 8


def _cpu(pid: int) -> tuple[float, float]:
    """(user + system, system) seconds a process has run, from /proc; zeros where it cannot be read."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0, 0.0
    tick = os.sysconf("SC_CLK_TCK")
    user, system = int(fields[11]) / tick, int(fields[12]) / tick
    return user + system, system


def _children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found += [int(x) for x in (task / "children").read_text().split()]
        except OSError:
            pass
    return found


def export_revision(rev: str, into: Path) -> Path:
    """The source tree of git revision ``rev`` (tracked files only) in ``into``."""
    into.mkdir(parents=True)
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", rev], capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive.stdout, check=True)
    return into


def measure(url: str, gateway_pid: int, body: bytes, headers: dict, seconds: float, wrk: str | None) -> dict:
    """One load on one gateway: samples/s, p99 and the CPU per request of the gateway and its instance."""
    procs = {"gateway": [gateway_pid], "instance": _children(gateway_pid)}
    before = {name: [_cpu(p) for p in pids] for name, pids in procs.items()}
    result = run_load(url, body, headers, CONNECTIONS, seconds, wrk)
    answered = max(result["ok"], 1)
    for name, pids in procs.items():
        after = [_cpu(p) for p in pids]
        result[f"{name}_ms"] = sum(a[0] - b[0] for a, b in zip(after, before[name])) / answered * 1000
        result[f"{name}_sys_ms"] = sum(a[1] - b[1] for a, b in zip(after, before[name])) / answered * 1000
    result["samples"] = result["rps"] * ROWS
    return result


def line(name: str, r: dict, limit: float) -> str:
    return (
        f"{name:<8}{r['samples']:>9,.0f} samples/s = {r['samples'] / limit:.3f}x the in-process limit, "
        f"p99 {r['p99_ms']:.1f} ms, errors {sum(r['errors'].values())}; CPU per request: gateway "
        f"{r['gateway_ms']:.3f} ms (system {r['gateway_sys_ms']:.3f}), instance {r['instance_ms']:.3f} ms "
        f"(system {r['instance_sys_ms']:.3f}); load {r['load']:.2f}, {r['generator']} "
        f"{r['client_cpu'] * 100:.0f}% of a core"
    )


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="tiny run: checks that every part works")
    parser.add_argument("--seconds", type=float, default=8.0, help="load duration per measurement")
    parser.add_argument("--rounds", type=int, default=3, choices=range(1, 21), metavar="1..20")
    parser.add_argument("--against", metavar="REV", help="an earlier git revision measured beside this tree")
    args = parser.parse_args(argv)
    seconds, rounds = (1.0, 1) if args.smoke else (args.seconds, args.rounds)
    wrk = find_wrk(install=not args.smoke)
    print(f"machine: {machine()}", flush=True)
    print(f"load generator: {'wrk' if wrk else 'the Python client (aiohttp): wrk is not installed'}", flush=True)
    work = Path(tempfile.mkdtemp(prefix="pai-bench-binary-"))
    procs: list[subprocess.Popen] = []
    try:
        export_model(work / "model", 32 if args.smoke else 512)
        sources: dict[str, Path | None] = {"this": None}
        if args.against:
            sources = {"before": export_revision(args.against, work / "before"), **sources}
        gateways = {}
        for name, source in sources.items():
            proc, url, token, wait = start_gateway(work / "model", work / f"gateway-{name}", "asyncio", source)
            procs.append(proc)
            gateways[name] = (proc.pid, url.replace("/api/predict/bench", "/v2/models/bench/infer"), token, wait)
        for *_, wait in gateways.values():
            wait()
        limit = in_process_limits(work / "model", min(seconds, 3.0))[ROWS]
        print(f"in-process limit at batch {ROWS}: {limit:,.0f} samples/s ({machine()})", flush=True)
        body, headers = binary_v2_body(ROWS)
        for pid, url, token, _ in gateways.values():  # one unmeasured load each: both are warm when it counts
            measure(url, pid, body, {**headers, "Authorization": token}, min(seconds, 2.0), wrk)
        names = list(gateways)
        runs: dict[str, list[dict]] = {name: [] for name in names}
        for r in range(rounds):
            for name in names[r % len(names) :] + names[: r % len(names)]:
                pid, url, token, _ = gateways[name]
                runs[name].append(measure(url, pid, body, {**headers, "Authorization": token}, seconds, wrk))
                print(f"round {r + 1}: {line(name, runs[name][-1], limit)}", flush=True)
            if args.against:
                ratio = runs["this"][-1]["samples"] / (runs["before"][-1]["samples"] or 1e-9)
                print(f"round {r + 1}: this / before {ratio:.3f}x samples/s", flush=True)
        medians = {name: sorted(rs, key=lambda x: x["samples"])[len(rs) // 2] for name, rs in runs.items()}
        for name, r in medians.items():
            print(f"median  {line(name, r, limit)}")
        if args.against:
            ratios = sorted(t["samples"] / (b["samples"] or 1e-9) for t, b in zip(runs["this"], runs["before"]))
            cpu = {k: medians["this"][k] / (medians["before"][k] or 1e-9) for k in ("gateway_ms", "instance_ms")}
            print(
                f"this / before ({args.against}): samples/s {ratios[len(ratios) // 2]:.3f}x (median of the rounds' "
                f"ratios, {ratios[0]:.3f}-{ratios[-1]:.3f}); CPU per request: gateway {cpu['gateway_ms']:.3f}x, "
                f"instance {cpu['instance_ms']:.3f}x; {machine()}"
            )
        return {"limit": limit, "runs": runs}
    finally:
        stop_servers(procs, work)


if __name__ == "__main__":
    main()
