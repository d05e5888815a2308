"""Launch overhead of `pai dlc submit` against two hand-started processes with TF_CONFIG.

The same 2-worker MultiWorkerMirroredStrategy script (benchmarks/mwms_steps.py) runs by hand (two
subprocesses with TF_CONFIG written here) and through `pai dlc submit tfjob --workers=2` on a `pai
server` with its Dask LocalCluster, alternating (each round starts with the next side), ``--repeat``
rounds. Each round prints, beside the machine's load average: wall time, steps/s and the time from
launch (the process start, or the `pai dlc submit` command) to the first training step, and the ratios
pai / hand (goal: wall <= 1.05x at 3,000 steps). A server this script started is paused (SIGSTOP)
while the other side runs, so neither pays for the other's idle process. ``--baseline DIR`` adds a
second server and CLI run from another pai_lab checkout (the code before a change), in the same
rounds, so before and after are compared under the same load.

    python benchmarks/training_overhead.py --steps 3000 --repeat 3    # real TensorFlow
    python benchmarks/training_overhead.py --plain --steps 20         # harness check, no TensorFlow
    python benchmarks/training_overhead.py --url URL --token T        # use a running server
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script, too
from benchmarks import mwms_steps
from benchmarks.pai_server import free_port, start_server


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            cpu = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), cpu)
    except OSError:
        pass
    try:
        memory = f", {os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GiB"
    except (ValueError, OSError, AttributeError):
        memory = ""
    return f"{platform.node()}: {os.cpu_count()} CPUs ({cpu}){memory}, Python {platform.python_version()}"


def load() -> str:
    return "load " + " ".join(f"{v:.2f}" for v in os.getloadavg()) if hasattr(os, "getloadavg") else "load n/a"


def parse(text: str) -> tuple[float, float]:
    first = min(float(v) for v in re.findall(r"first_step_at=([\d.]+)", text))
    rate = min(float(v) for v in re.findall(r"steps_per_s=([\d.]+)", text))
    return first, rate


def by_hand(script: list[str]) -> dict:
    hosts = [f"127.0.0.1:{free_port()}" for _ in range(2)]
    launched = time.time()
    procs = []
    for index in range(2):
        env = dict(
            os.environ, TF_CONFIG=json.dumps({"cluster": {"worker": hosts}, "task": {"type": "worker", "index": index}})
        )
        procs.append(
            subprocess.Popen(
                [sys.executable, *script],
                env=env,
                text=True,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                # each in a session of its own, as pai's ranks are and as two terminals would be: Linux
                # shares the CPU between sessions first, so on a loaded machine two ranks in this
                # script's one session would get half what pai's get
                start_new_session=True,
            )
        )
    outputs = [p.communicate()[0] for p in procs]
    wall = time.time() - launched
    if any(p.returncode for p in procs):
        raise SystemExit("hand-launched run failed:\n" + "\n".join(o[-2000:] for o in outputs))
    first, rate = parse("\n".join(outputs))
    return {"wall_s": wall, "steps_per_s": rate, "first_step_s": first - launched, "load": load()}


class Pai:
    """One control plane to submit to: a running one (``url``), or a `pai server` started here from ``tree``
    (a pai_lab checkout; None: this one), paused while it is not measured."""

    def __init__(self, work: Path, label: str, tree: Path | None = None, url: str = "", token: str = ""):
        self.label, self.tree, self.url, self.token = label, tree, url, token
        self.env = dict(os.environ, PYTHONPATH=str(tree)) if tree else None
        self.server = None
        if not url:
            root = work / f"root-{label}"
            root.mkdir()
            self.server, self.url, self.token = start_server(root, env=self.env, cwd=tree)

    def pause(self, paused: bool) -> None:
        if self.server is not None:
            os.kill(self.server.pid, signal.SIGSTOP if paused else signal.SIGCONT)

    def close(self) -> None:
        if self.server is not None:
            self.pause(False)
            self.server.terminate()
            self.server.wait(60)

    def run(self, script: list[str]) -> dict:
        env = dict(self.env or os.environ, PAI_LAB_URL=self.url, PAI_LAB_TOKEN=self.token)
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
                f"--command=python {' '.join(script)}",
                "--json",
            ],
            env=env,
            capture_output=True,
            text=True,
            check=False,
            cwd=self.tree,
        )
        wall = time.time() - launched
        if done.returncode != 0:
            raise SystemExit(
                f"pai dlc submit failed ({done.returncode}):\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
            )
        job = json.loads(done.stdout)
        from pai_lab.client import PaiClient

        jobs = PaiClient(self.url, self.token).workspace("default").jobs.get(job["id"])
        first, rate = parse(jobs.logs(None))
        return {"wall_s": wall, "steps_per_s": rate, "first_step_s": first - launched, "job": job["id"], "load": load()}


def _row(name: str, r: dict) -> str:
    return (
        f"  {name:<9}: wall {r['wall_s']:7.2f} s, {r['steps_per_s']:7.1f} steps/s, "
        f"first step after {r['first_step_s']:5.2f} s   [{r['load']}]"
    )


def _ratios(pai: dict, hand: dict) -> dict:
    return {
        "wall_ratio": pai["wall_s"] / hand["wall_s"],
        "steps_per_s_ratio": hand["steps_per_s"] / pai["steps_per_s"],
        "first_step_extra_s": pai["first_step_s"] - hand["first_step_s"],
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--repeat", type=int, default=1, help="rounds (hand, pai[, baseline]), alternating")
    parser.add_argument("--plain", action="store_true", help="a stdlib-only stand-in script (harness check)")
    parser.add_argument("--url")
    parser.add_argument("--token", default="")
    parser.add_argument(
        "--baseline", type=Path, help="another pai_lab checkout (the code before a change), measured in the same rounds"
    )
    parser.add_argument(
        "--work",
        help="folder for the job's script, one the server's ranks can see (with --url: "
        "inside its root or allowed roots); default: a new temporary folder",
    )
    args = parser.parse_args(argv)
    if args.repeat < 1 or args.steps < 1:
        parser.error("--steps and --repeat must be at least 1")
    work = Path(tempfile.mkdtemp(prefix="pai-bench-", dir=args.work))
    path = str(mwms_steps.write_to(work))
    options = ["--plain"] if args.plain else []

    def script(steps: int) -> list[str]:  # the rank's argv after `python`
        return [path, str(steps), *options]

    kind = "plain" if args.plain else "tensorflow-mwms"
    print(f"2-worker MWMS, {args.steps} steps ({kind}); {machine()}", flush=True)
    sides: list[Pai] = []
    rounds = []
    try:
        sides.append(Pai(work, "pai", url=args.url or "", token=args.token))
        if args.baseline:
            sides.append(Pai(work, "baseline", tree=args.baseline.resolve()))
        for side in sides:  # warm up: the cluster starts lazily
            side.pause(False)
            side.run(script(min(args.steps, 5)))
            side.pause(True)
        for index in range(args.repeat):
            # each round starts with another side (hand, pai, baseline, then pai, baseline, hand...), so a
            # load that rises or falls through a round weighs on each side in turn
            order: list[Pai | None] = [None, *sides]
            order = order[index % len(order) :] + order[: index % len(order)]
            measured = {}
            print(f"round {index + 1}", flush=True)
            for side in order:
                if side is None:
                    measured["hand"] = by_hand(script(args.steps))
                    print(_row("by hand", measured["hand"]), flush=True)
                    continue
                side.pause(False)
                try:
                    measured[side.label] = side.run(script(args.steps))
                finally:
                    side.pause(True)
                print(_row(side.label, measured[side.label]), flush=True)
            for side in sides:
                r = _ratios(measured[side.label], measured["hand"])
                print(
                    f"  {side.label}/hand: wall {r['wall_ratio']:.3f}x, time per step {r['steps_per_s_ratio']:.3f}x, "
                    f"first step {r['first_step_extra_s']:+.2f} s",
                    flush=True,
                )
            rounds.append(measured)
    finally:
        for side in sides:
            side.close()
    result: dict = {"steps": args.steps, "script": kind, "machine": machine(), "rounds": rounds}
    result.update(hand=rounds[-1]["hand"], pai=rounds[-1]["pai"], **_ratios(rounds[-1]["pai"], rounds[-1]["hand"]))
    print(f"median of {len(rounds)} round(s)   [{load()}]")
    for side in sides:
        ratios = [_ratios(r[side.label], r["hand"]) for r in rounds]
        median = {k: statistics.median(r[k] for r in ratios) for k in ratios[0]}
        result[f"{side.label}_median"] = median
        print(
            f"  ratio {side.label}/hand: wall {median['wall_ratio']:.3f}x, time per step "
            f"{median['steps_per_s_ratio']:.3f}x, first step {median['first_step_extra_s']:+.2f} s"
        )
    return result


if __name__ == "__main__":
    main()
