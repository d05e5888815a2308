"""The closed loop on digits: labels needed to reach 95% test accuracy, uncertainty order against random.

Each seed splits the 1,797 `sample://digits` items into a held-out test split and a pool. A round
labels one package of 50 from the pool (answers from the ground truth, through the labeling API:
claim, submit, submit_package), trains on the task's answers (a 2-rank job with
`--data_sources=task:NAME`, examples/training/digits_classifier.py, 60 epochs on every label, none
held out), serves the job's model, measures the served model's accuracy on the test split,
pre-labels the rest of the pool with the service (`task.prelabel_from_service`) and orders the
untouched packages, by `task.order("cluster_margin")` (the order `--order` names) or at random
(`task.order("random")`). Every loop (and the anchor) starts from the package `task.order("typical")`
makes before any model exists (`--first-package seeded`: the pool's first items).
Rounds go on until the test accuracy reaches the target or `--max-labels` are labelled.

In the same run, the anchor: the notebook active-learning recipe (superintendent / modAL style),
scikit-learn LogisticRegression on the 64 raw pixels, least-confidence sampling against random,
the same splits, first package and rounds, in this process. It also times one whole round from a
fresh control plane (a new `pai server` on an empty folder) to the first prediction.

    python benchmarks/closed_loop.py                       # 3 seeds, rounds of 50, target 95%
    python benchmarks/closed_loop.py --seeds 5 --round-size 20
    python benchmarks/closed_loop.py --order least_confidence --first-package seeded --epochs 30 --validation-every 10
    python benchmarks/closed_loop.py --anchor-only         # the scikit-learn recipe alone (seconds)
    python benchmarks/closed_loop.py --smoke               # one round each, tiny sizes (the test's run)

Last line: `labels to 95%: uncertainty U, random R (ratio X); anchor ratio A` (means over seeds;
a seed that never reaches the target counts with the labels it had when it stopped).
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script, too
from benchmarks.closed_loop_data import Anchor, digits, labels_to_target, split
from benchmarks.pai_server import start_server

__all__ = ["Anchor", "digits", "labels_to_target", "main", "split"]

ROOT = Path(__file__).resolve().parents[1]
TRAINING_CODE = ROOT / "examples" / "training"
STRATEGIES = {"uncertainty": "least_confidence", "random": "random"}
CLASSES = [str(d) for d in range(10)]


# ---------------------------------------------------------------- one loop, any learner


def run_loop(learner, strategy: str, seed: int, args) -> list[tuple[int, float]]:
    """Rounds of: label a package, train, score on the test split, pre-label, order; until the target."""
    learner.begin(strategy, seed)
    curve: list[tuple[int, float]] = []
    try:
        while True:
            labelled = learner.label_round()
            if labelled is None:  # the pool is used up
                break
            accuracy = learner.train_and_score()
            curve.append((labelled, accuracy))
            if accuracy < args.target:  # the round ends with the pre-labels and order of the next package
                learner.rank(strategy)
            print(
                f"    {learner.name} {strategy:<11} seed {seed} round {len(curve):>2}: {labelled:>4} labels, "
                f"test accuracy {accuracy:.4f}{learner.round_note()}",
                flush=True,
            )
            if accuracy >= args.target or labelled >= args.max_labels:
                break
    finally:
        learner.end()
    return curve


# ---------------------------------------------------------------- the platform's loop


def stop_server(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(60)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # the server's own session: its cluster and instances
        proc.wait(10)


class Platform:
    """The loop through pai_lab: a labeling task over the pool, a 2-rank job per round, a service, pre-labels."""

    name = "pai_lab "

    def __init__(self, ws, y: np.ndarray, args, clock: dict):
        self.ws, self.y, self.args, self.clock = ws, y, args, clock
        self.timings: list[dict] = []
        started = time.perf_counter()
        self.dataset = ws.datasets.register("digits", "sample://digits", progress=False)
        # The sample's files are numbered by their index in the digits table: {digit}/{index:04d}.png.
        self.items = {int(Path(i.source).stem): i for i in self.dataset.items()}
        self.test_bytes: dict[int, bytes] = {}
        clock["register"] = time.perf_counter() - started

    def begin(self, strategy: str, seed: int) -> None:
        self.pool, self.test = split(self.y, seed, self.args.test_fraction, self.args.pool, self.args.test)
        self.seed, self.strategy, self.round = seed, strategy, 0
        self.service = None
        for index in self.test:
            if index not in self.test_bytes:
                self.test_bytes[index] = self.dataset.read_bytes(self.items[index])
        started = time.perf_counter()
        lines = [{"data": {"source": self.items[i].source}} for i in self.pool]
        self.task = self.ws.labeling.create_task(
            f"cl-{strategy}-s{seed}-{os.urandom(2).hex()}",
            "image-classification",
            labels=CLASSES,
            lines=lines,
            package_size=self.args.round_size,
        )
        if self.args.first_package == "typical":  # the server embeds the images; the anchor starts alike
            self.task.order("typical", seed=seed)
        self.clock.setdefault("task", time.perf_counter() - started)

    def _truth(self, item) -> str:
        return Path(item.data["source"]).parent.name  # the sample keeps each digit in a folder named after it

    def label_round(self) -> int | None:
        started = time.perf_counter()
        package = self.task.claim()
        if package is None:
            return None
        items = self.task.items(package)
        suggested = [i for i in items if i.prelabel]
        self.note = {
            "package_items": len(items),
            "suggested": len(suggested),
            "suggestions_right": sum(_suggested_label(i) == self._truth(i) for i in suggested),
            "package_confidence": _mean([i.prelabel_score for i in suggested if i.prelabel_score]),
        }
        for item in items:
            self.task.submit(item.seq, self._truth(item))
        self.task.submit_package(package)
        self.round += 1
        self.times = {"label_s": time.perf_counter() - started}
        return self.task.refresh().labeled

    def train_and_score(self) -> float:
        a = self.args
        name = f"cl-{self.strategy[:3]}-s{self.seed}-r{self.round}"
        started = time.perf_counter()
        command = (
            f"python /root/code/digits_classifier.py --epochs={a.epochs} --seed={self.seed} "
            f"--validation_every={a.validation_every}"
        )
        job = self.ws.jobs.submit(
            name, command, workers=2, code_source=str(TRAINING_CODE), data_sources=[f"task:{self.task.name}"]
        )
        job.wait(timeout=1800, raise_on_failure=True)
        self.times["train_s"] = time.perf_counter() - started
        started = time.perf_counter()
        previous = self.service
        self.service = self.ws.services.deploy(job, name=name.replace("-", "_"), progress=False)
        self.times["deploy_s"] = time.perf_counter() - started
        if previous is not None:
            previous.delete()
        started = time.perf_counter()
        right = 0
        for i in range(0, len(self.test), 100):
            chunk = self.test[i : i + 100]
            out = self.service.predict({"image_bytes": [self.test_bytes[k] for k in chunk]})
            predicted = out["label"] if "label" in out else [CLASSES[p] for p in np.argmax(out["probabilities"], 1)]
            right += sum(str(p) == str(self.y[k]) for p, k in zip(predicted, chunk))
            if i == 0:
                self.clock.setdefault("first_prediction", time.perf_counter())
        self.times["score_s"] = time.perf_counter() - started
        return right / len(self.test)

    def rank(self, strategy: str) -> None:
        started = time.perf_counter()
        self.times["prelabelled"] = self.task.prelabel_from_service(self.service.name, progress=False)
        self.times["prelabel_s"] = time.perf_counter() - started
        started = time.perf_counter()
        by = self.args.order if strategy == "uncertainty" else STRATEGIES[strategy]
        self.task.order(by, seed=self.seed * 1000 + self.round)
        self.times["order_s"] = time.perf_counter() - started

    def round_note(self) -> str:
        t = self.times
        note = (
            f" (label {t['label_s']:.1f} s, train {t['train_s']:.1f} s, deploy {t['deploy_s']:.1f} s, "
            f"score {t['score_s']:.1f} s"
        )
        if "prelabel_s" in t:
            note += (
                f", pre-labelled {t['prelabelled']} items in {t['prelabel_s']:.1f} s, ordered in {t['order_s']:.1f} s"
            )
        n = self.note
        if n["suggested"]:
            note += (
                f"; the package's suggestions right {n['suggestions_right']}/{n['suggested']}"
                f", mean confidence {n['package_confidence']:.2f}"
            )
        self.timings.append(dict(t))
        return note + ")"

    def end(self) -> None:
        if self.service is not None:
            self.service.delete()
            self.service = None


def _suggested_label(item) -> str | None:
    """The label a classification pre-label suggests (iTAG results: the question's data)."""
    try:
        value = item.prelabel[0]["data"]
    except (IndexError, KeyError, TypeError):
        return None
    return str(value[0] if isinstance(value, list) and value else value)


def _mean(values: list) -> float:
    return statistics.fmean(values) if values else float("nan")


# ---------------------------------------------------------------- the comparison


def compare(learner, seeds: list[int], args) -> dict:
    """Per strategy: labels to the target per seed, and their mean; the ratio uncertainty / random."""
    result: dict = {}
    for strategy in STRATEGIES:
        runs = [labels_to_target(run_loop(learner, strategy, seed, args), args.target) for seed in seeds]
        result[strategy] = {
            "per_seed": [n for n, _ in runs],
            "reached": [ok for _, ok in runs],
            "mean": statistics.fmean(n for n, _ in runs),
        }
    result["ratio"] = result["uncertainty"]["mean"] / result["random"]["mean"]
    return result


def describe(title: str, result: dict) -> None:
    print(title)
    for strategy in STRATEGIES:
        r = result[strategy]
        seeds = ", ".join(f"{n}{'' if ok else '+'}" for n, ok in zip(r["per_seed"], r["reached"]))
        print(f"  {strategy:<11}: {r['mean']:.0f} labels (per seed {seeds})")
    print(f"  ratio uncertainty / random: {result['ratio']:.2f}x")


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3, help="seeds of the platform's loop (each a split and order)")
    parser.add_argument(
        "--first-seed", type=int, default=0, help="the platform's seeds are first-seed, first-seed + 1, ..."
    )
    parser.add_argument("--anchor-seeds", type=int, default=20, help="seeds of the scikit-learn anchor")
    parser.add_argument("--round-size", type=int, default=50, help="labels per round (one package)")
    parser.add_argument("--target", type=float, default=0.95, help="test accuracy to reach")
    parser.add_argument("--max-labels", type=int, default=1000, help="stop a loop here if it never reaches the target")
    parser.add_argument("--test-fraction", type=float, default=0.3, help="held-out share of the 1,797 digits")
    parser.add_argument("--epochs", type=int, default=60, help="epochs of digits_classifier.py per round")
    parser.add_argument(
        "--validation-every",
        type=int,
        default=0,
        help="digits_classifier.py holds out every N-th label for validation; 0 (default): every label trains",
    )
    parser.add_argument(
        "--order",
        default="cluster_margin",
        help="the task order the uncertainty loop repacks by (task.order's names, e.g. least_confidence, margin; "
        "random stays random)",
    )
    parser.add_argument(
        "--first-package",
        choices=["seeded", "typical"],
        default="typical",
        help='typical: task.order("typical") before the first claim (every loop and the anchor start from it); '
        "seeded: the pool's first items",
    )
    parser.add_argument("--pool", type=int, default=None, help="use only this many pool items (tiny runs)")
    parser.add_argument("--test", type=int, default=None, help="use only this many test items (tiny runs)")
    parser.add_argument("--anchor-only", action="store_true", help="the scikit-learn recipe alone, no platform")
    parser.add_argument("--smoke", action="store_true", help="one round per loop at tiny sizes (the test's run)")
    args = parser.parse_args(argv)
    if __name__ == "__main__":  # a stopped run still stops its server (the finally blocks run)
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if args.smoke:
        args.seeds, args.anchor_seeds, args.round_size, args.max_labels = 1, 2, 20, 20
        args.epochs, args.pool, args.test = 3, 120, 100

    x, y = digits()
    print(
        f"digits: {len(y)} items, test fraction {args.test_fraction}, rounds of {args.round_size}, "
        f"target {args.target:.0%}, at most {args.max_labels} labels; {os.cpu_count()} CPU cores, "
        f"Python {platform.python_version()}",
        flush=True,
    )
    result: dict = {"args": vars(args)}
    started = time.perf_counter()
    result["anchor"] = compare(Anchor(x, y, args), list(range(args.anchor_seeds)), args)
    describe(
        f"anchor (LogisticRegression, 64 raw pixels), {args.anchor_seeds} seeds, "
        f"{time.perf_counter() - started:.1f} s:",
        result["anchor"],
    )
    if not args.anchor_only:
        result["platform"], result["first_round"] = platform_run(y, args)
        describe(
            f"pai_lab (digits_classifier.py, 2 ranks, {args.epochs} epochs, order {args.order}), {args.seeds} seeds, "
            f"load average {', '.join(f'{v:.1f}' for v in os.getloadavg())}:",
            result["platform"],
        )
        f = result["first_round"]
        print(
            f"one round from a fresh control plane to the first prediction: {f['total_s']:.1f} s "
            f"(server up {f['server_s']:.1f} s, register {f['register_s']:.1f} s, task {f['task_s']:.1f} s, "
            f"label {f['label_s']:.1f} s, train {f['train_s']:.1f} s, deploy {f['deploy_s']:.1f} s, "
            f"test images read and first prediction {f['predict_s']:.1f} s)"
        )
    main_result = result.get("platform") or {s: {"mean": float("nan")} for s in STRATEGIES} | {"ratio": float("nan")}
    print(
        f"labels to {args.target:.0%}: uncertainty {main_result['uncertainty']['mean']:.0f}, "
        f"random {main_result['random']['mean']:.0f} (ratio {main_result['ratio']:.2f}); "
        f"anchor ratio {result['anchor']['ratio']:.2f}",
        flush=True,
    )
    return result


def platform_run(y: np.ndarray, args) -> tuple[dict, dict]:
    from pai_lab.client import PaiClient

    work = Path(tempfile.mkdtemp(prefix="pai-closed-loop-"))
    (work / "root").mkdir()
    clock: dict = {"start": time.perf_counter()}
    # the training script is read from this checkout, outside the server's root
    server, url, token = start_server(work / "root", "--allowed-root", str(TRAINING_CODE))
    clock["server"] = time.perf_counter()
    try:
        ws = PaiClient(url, token).workspace("default")
        learner = Platform(ws, y, args, clock)
        result = compare(learner, list(range(args.first_seed, args.first_seed + args.seeds)), args)
    finally:
        stop_server(server)
        shutil.rmtree(work, ignore_errors=True)
    first = learner.timings[0]
    result["timings"] = learner.timings
    first_round = {
        "total_s": clock["first_prediction"] - clock["start"],
        "server_s": clock["server"] - clock["start"],
        "register_s": clock["register"],
        "task_s": clock["task"],
        "label_s": first["label_s"],
        "train_s": first["train_s"],
        "deploy_s": first["deploy_s"],
    }
    first_round["predict_s"] = first_round["total_s"] - sum(v for k, v in first_round.items() if k != "total_s")
    return result, first_round


if __name__ == "__main__":
    main()
