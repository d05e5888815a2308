"""WorkQueue against static sharding with one slow rank (the PAI-TF extensions' long-tail anchor).

N ranks on a Dask LocalCluster of N worker processes work through M items of t seconds each (sleeps, so
the 2-core machine's load barely matters); one rank is k times slower. Static sharding gives each rank
M/N items: makespan (M/N)·k·t. WorkQueue lets ranks pull: makespan M·t/(N-1+1/k), plus at most one
slow item, and the slow rank takes about M/((N-1)k+1) items (15 of 60 for N=2, k=3).

    python benchmarks/work_queue.py            # N=2, k=3, M=60, t=50 ms
    python benchmarks/work_queue.py --smoke    # a few items, for the tests

Prints one JSON line of figures, then a one-line summary.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.http_loads import machine


def _rank(mode: str, name: str, works: list[str], cost: float, shard: list[str], start_at: float) -> dict:
    from pai_lab.pai_tf import WorkQueue

    queue = WorkQueue(works, shuffle=False, name=name) if mode == "queue" else None
    time.sleep(max(0.0, start_at - time.time()))  # every rank starts at the same moment
    began, done = time.time(), 0
    for _item in queue if queue is not None else shard:
        time.sleep(cost)
        done += 1
    ended = time.time()
    if queue is not None:
        queue.close()
    return {"began": began, "ended": ended, "items": done}


def run(client, mode: str, ranks: int, items: int, cost: float, slow: float, run_id: int) -> dict:
    workers = sorted(client.scheduler_info()["workers"])[:ranks]
    works = [f"item-{i:04d}" for i in range(items)]
    start_at = time.time() + 1.5
    futures = []
    for r, worker in enumerate(workers):
        rank_cost = cost * (slow if r == 0 else 1.0)
        shard = works[r * items // ranks : (r + 1) * items // ranks]
        futures.append(
            client.submit(
                _rank,
                mode,
                f"bench-{run_id}",
                works,
                rank_cost,
                shard,
                start_at,
                workers=[worker],
                allow_other_workers=False,
                pure=False,
            )
        )
    results = client.gather(futures)
    makespan = max(r["ended"] for r in results) - min(r["began"] for r in results)
    return {"makespan_s": round(makespan, 3), "slow_items": results[0]["items"], "items": [r["items"] for r in results]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ranks", type=int, default=2)
    parser.add_argument("--items", type=int, default=60)
    parser.add_argument("--cost", type=float, default=0.05, help="seconds per item on a normal rank")
    parser.add_argument("--slow", type=float, default=3.0, help="how many times slower the slow rank is")
    parser.add_argument("--smoke", action="store_true", help="12 items of 20 ms: a quick check")
    args = parser.parse_args()
    if args.smoke:
        args.items, args.cost = 12, 0.02

    from distributed import Client, LocalCluster

    n, m, t, k = args.ranks, args.items, args.cost, args.slow
    cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=":0")
    with cluster, Client(cluster) as client:
        client.wait_for_workers(n, timeout=120)
        run(client, "queue", n, 2 * n, 0.001, k, 0)  # warm-up: imports, the scheduler extension
        static = run(client, "static", n, m, t, k, 1)
        queue = run(client, "queue", n, m, t, k, 2)
    formula_static = (m / n) * k * t
    formula_queue = m * t / (n - 1 + 1 / k)
    figures = {
        "ranks": n,
        "items": m,
        "cost_s": t,
        "slow": k,
        "static": static,
        "work_queue": queue,
        "formula_static_s": round(formula_static, 3),
        "formula_queue_s": round(formula_queue, 3),
        "queue_vs_formula": round(queue["makespan_s"] / formula_queue, 3),
        "speedup_vs_static": round(static["makespan_s"] / queue["makespan_s"], 3),
        "expected_slow_items": round(m / ((n - 1) * k + 1), 1),
        "machine": machine(),
    }
    print(json.dumps(figures))
    print(
        f"WorkQueue {queue['makespan_s']:.2f} s (formula {formula_queue:.2f} s, "
        f"x{figures['queue_vs_formula']:.2f}); static {static['makespan_s']:.2f} s "
        f"(formula {formula_static:.2f} s); speedup x{figures['speedup_vs_static']:.2f}; "
        f"slow rank took {queue['slow_items']} of {m} items (expected {figures['expected_slow_items']}); "
        f"on {figures['machine']}"
    )


if __name__ == "__main__":
    main()
