"""Many labelers at once: N labelers (threads, each a member of its own with its own token, named
as a labeler of the task) claim packages from one pool and answer every item at full speed for a
fixed time, against a real `pai server` on SQLite and then on PostgreSQL. Every 7th answer is sent
twice at once with one client id, as a retry racing the original, and every 7th package is submitted
twice at once, as a double click.

Afterwards it proves, from the server's own records, that no package was claimed twice (each one
is held or was submitted by the one labeler who got it, and no two claims returned the same one)
and that no answer was lost or doubled (every acknowledged answer is on its item, once: revision
1; every other item has none). Prints claim, answer and package-submit latency p50 / p99 (client
round trips, loopback) per database.

    python benchmarks/labelers.py                          # 20 labelers, 3 minutes each on SQLite and PostgreSQL
    python benchmarks/labelers.py --database sqlite --duration 10
    python benchmarks/labelers.py --postgres-url postgresql+psycopg://user@host/db   # a server of your own
    python benchmarks/labelers.py --smoke                  # a few seconds each (the unit test)
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.http_loads import machine
from benchmarks.pai_server import start_server
from pai_lab.client import PaiClient
from pai_lab.errors import Conflict

LABELS = ("cat", "dog")
RETRIED = 7  # every 7th item's answer is sent twice at once, as a retry racing the original


def answer_for(seq: int) -> str:
    return LABELS[seq % 2]


def percentiles(samples: list[float]) -> tuple[float, float]:
    if not samples:
        return float("nan"), float("nan")
    ms = np.array(samples) * 1000
    return float(np.percentile(ms, 50)), float(np.percentile(ms, 99))


class Labeler(threading.Thread):
    """Claims a package, answers its items one request each (with a client id), submits it, again,
    until the pool is empty or the time is up (the package in hand is then left held)."""

    def __init__(self, url: str, name: str, token: str, task_id: str, clock: dict, start: threading.Barrier):
        super().__init__(name=name, daemon=True)
        self.user, self.clock, self.start_line = name, clock, start
        self.task = PaiClient(url, token).workspace("default").labeling.get(task_id)
        self.twin = PaiClient(url, token).workspace("default").labeling.get(task_id)  # a retry's connection
        self.claimed: list[int] = []
        self.submitted: list[int] = []
        self.acked: list[int] = []
        self.latency: dict[str, list[float]] = {"claim": [], "answer": [], "package": []}
        self.error: BaseException | None = None

    def retried(self, seq: int, client_id: str) -> None:
        """The same answer sent twice at once (a client retrying while the first is in flight): one is
        stored, the other is told it is a duplicate of it."""
        acks: list = [None, None]

        def send(i: int, task) -> None:
            acks[i] = task.submit(seq, answer_for(seq), client_id=client_id)

        twin = threading.Thread(target=send, args=(1, self.twin))
        twin.start()
        send(0, self.task)
        twin.join()
        assert acks[1] is not None, "the retry got no answer"
        assert sorted(a.duplicate for a in acks) == [False, True] and acks[0].id == acks[1].id, acks

    def submitted_twice(self, pkg) -> None:
        """A package submitted twice at once (a double click): one moves it on, the other is refused."""
        outcomes: list = [None, None]

        def send(i: int, task) -> None:
            try:
                outcomes[i] = task.submit_package(pkg).state
            except Conflict as exc:
                outcomes[i] = exc

        twin = threading.Thread(target=send, args=(1, self.twin))
        twin.start()
        send(0, self.task)
        twin.join()
        refused = [o for o in outcomes if isinstance(o, Conflict)]
        assert len(refused) == 1, f"package {pkg.number} submitted twice at once: {outcomes}"

    def timed(self, kind: str, call, *args, **kw):
        t = time.perf_counter()
        out = call(*args, **kw)
        self.latency[kind].append(time.perf_counter() - t)
        return out

    def run(self) -> None:
        try:
            self.start_line.wait()  # all at once; the last one to arrive starts the clock
            stop_at = self.clock["stop"]
            while time.monotonic() < stop_at:
                pkg = self.timed("claim", self.task.claim)
                if pkg is None:
                    return  # the pool is empty
                self.claimed.append(pkg.number)
                for item in self.task.items(pkg):
                    if time.monotonic() >= stop_at:
                        return
                    client_id = uuid.uuid4().hex
                    if item.seq % RETRIED == 0:
                        self.retried(item.seq, client_id)
                    else:
                        ack = self.timed(
                            "answer", self.task.submit, item.seq, answer_for(item.seq), client_id=client_id
                        )
                        assert ack.item == item.seq and not ack.duplicate, ack
                    self.acked.append(item.seq)
                if pkg.number % RETRIED == 0:
                    self.submitted_twice(pkg)
                else:
                    self.timed("package", self.task.submit_package, pkg)
                self.submitted.append(pkg.number)
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            self.error = exc


def verify(task, labelers: list[Labeler], total: int) -> dict:
    """The server's records against what the labelers were told; raises AssertionError on any loss,
    double answer or double claim."""
    claims = Counter(n for lab in labelers for n in lab.claimed)
    doubled = sorted(n for n, c in claims.items() if c > 1)
    assert not doubled, f"packages claimed twice: {doubled[:20]}"
    claimer = {n: lab.user for lab in labelers for n in lab.claimed}
    submitted = {n for lab in labelers for n in lab.submitted}
    for pkg in task.packages():
        who = claimer.get(pkg.number)
        if who is None:
            assert pkg.state == "label_pool" and pkg.holder is None, (
                f"package {pkg.number} moved without a claim: {pkg}"
            )
        elif pkg.number in submitted:
            assert pkg.labeler == who and pkg.holder is None and pkg.state != "labeling", (who, pkg)
        else:
            assert pkg.holder == who and pkg.state == "labeling", (who, pkg)
    acked = Counter(seq for lab in labelers for seq in lab.acked)
    assert not [s for s, c in acked.items() if c > 1], "an item was answered twice by the labelers"
    items = []
    for offset in range(0, total, 10000):
        items += task.all_items(offset=offset, limit=10000)
    assert len(items) == total
    for item in items:
        if item.seq in acked:
            assert item.revision == 1, f"item {item.seq} has {item.revision} answers, 1 was given"
            assert item.label and answer_for(item.seq) in json.dumps(item.label), f"item {item.seq} lost its answer"
        else:
            assert item.revision == 0 and item.label is None, f"item {item.seq} has an answer nobody gave: {item}"
    assert task.stats().labeled == len(acked)
    return {"packages_claimed": len(claims), "packages_submitted": len(submitted), "answers": len(acked)}


def run_once(url: str, tokens: dict[str, str], owner_token: str, args) -> dict:
    owner = PaiClient(url, owner_token)
    ws = owner.workspace("default")
    for user in tokens:
        ws.members.add(user, ["AlgorithmDeveloper"])  # label.work only on tasks that name them
    task = ws.labeling.create_task(
        f"crowd_{uuid.uuid4().hex[:6]}",
        "image-classification",
        labels=list(LABELS),
        package_size=args.package_size,
        labelers=list(tokens),
        lines=[{"data": {"source": f"img/{i}.jpg"}} for i in range(args.items)],
    )
    clock: dict[str, float] = {}

    def go() -> None:
        clock["start"] = time.monotonic()
        clock["stop"] = clock["start"] + args.duration

    start = threading.Barrier(len(tokens), action=go)
    labelers = [Labeler(url, user, token, task.id, clock, start) for user, token in tokens.items()]
    for lab in labelers:
        lab.start()
    for lab in labelers:
        lab.join()
    wall = time.monotonic() - clock["start"]
    errors = [f"{lab.user}: {lab.error!r}" for lab in labelers if lab.error]
    assert not errors, "labelers failed:\n" + "\n".join(errors)
    checked = verify(task, labelers, args.items)
    out = {**checked, "wall_s": wall, "answers_per_s": checked["answers"] / wall}
    for kind in ("claim", "answer", "package"):
        out[kind] = percentiles([x for lab in labelers for x in lab.latency[kind]])
    return out


def postgres_database(server_url: str | None) -> tuple[str, object]:
    """A fresh database on ``server_url`` (else on a throwaway PostgreSQL server started here, with its
    default durability); returns its URL and a cleanup."""
    from sqlalchemy import create_engine, text

    from tests import pg_cluster

    folder = None
    if server_url is None:
        folder, server_url = pg_cluster.start(durable=True)
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    name = f"pai_bench_{uuid.uuid4().hex[:8]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))

    def cleanup() -> None:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
        if folder is not None:
            pg_cluster.stop(folder)

    return server_url.rsplit("/", 1)[0] + "/" + name, cleanup


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--labelers", type=int, default=20)
    ap.add_argument("--duration", type=float, default=180.0, help="seconds of labeling on each database")
    ap.add_argument("--items", type=int, default=40000, help="items in the pool (more than are answered)")
    ap.add_argument("--package-size", type=int, default=5)
    ap.add_argument("--database", choices=("sqlite", "postgresql", "both"), default="both")
    ap.add_argument("--postgres-url", help="a PostgreSQL server to make the database on (else one is started)")
    ap.add_argument("--smoke", action="store_true", help="3 s on a pool that runs out: the unit test")
    args = ap.parse_args(argv)
    if args.smoke:
        args.duration, args.items, args.package_size = 3.0, 60, 2
    databases = ["sqlite", "postgresql"] if args.database == "both" else [args.database]
    tokens = {f"labeler{i:02d}": f"tok-{i:02d}-{os.urandom(4).hex()}" for i in range(args.labelers)}
    users = [f for user, token in tokens.items() for f in ("--user", f"{user}={token}")]
    results = {}
    for db in databases:
        root = Path(tempfile.mkdtemp(prefix="labelers-"))
        extra, cleanup = [], None
        if db == "postgresql":
            url, cleanup = postgres_database(args.postgres_url)
            extra = ["--database-url", url]
        proc, server, owner_token = start_server(root, *users, *extra)
        try:
            results[db] = run_once(server, tokens, owner_token, args)
            results[db]["machine"] = machine()  # with the load average the run left
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(30)
            if cleanup is not None:
                cleanup()
            shutil.rmtree(root, ignore_errors=True)
    print(f"{args.labelers} labelers, {args.duration:g} s, packages of {args.package_size}, loopback")
    print(
        f"{'':<12}{'claims':>8}{'answers':>9}{'answers/s':>11}"
        + "".join(f"{k + ' p50/p99 ms':>24}" for k in ("claim", "answer", "package"))
    )
    for db, r in results.items():
        cells = "".join(f"{r[k][0]:>13.1f} / {r[k][1]:>7.1f}" for k in ("claim", "answer", "package"))
        print(f"{db:<12}{r['packages_claimed']:>8}{r['answers']:>9}{r['answers_per_s']:>11.1f}{cells}")
        print(f"{'':<12}on {r['machine']}")
    print("no package claimed twice, no answer lost or doubled")
    return results


if __name__ == "__main__":
    main()
