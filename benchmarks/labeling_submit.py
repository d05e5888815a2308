"""Submit round trip through the Python client against a real `pai server` on loopback.

Each submission is what a labeling widget sends for one item: the answer with a client id,
stored durably (one transaction) before the server answers. Prints p50 / p99 over N
submissions, next to the server's cheapest authenticated round trip (GET /me) measured in the
same run, and the ratio between the two.

    python benchmarks/labeling_submit.py            # 2,000 submissions
    python benchmarks/labeling_submit.py --n 50     # a quick look
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.pai_server import start_server
from pai_lab.client import PaiClient


def percentiles(samples: list[float]) -> tuple[float, float]:
    ms = np.array(samples) * 1000
    return float(np.percentile(ms, 50)), float(np.percentile(ms, 99))


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=2000, help="number of submissions")
    ap.add_argument("--url", help="use this running server instead of starting one (with --token)")
    ap.add_argument("--token", default="")
    args = ap.parse_args(argv)
    n = args.n
    root = Path(tempfile.mkdtemp(prefix="label-submit-"))
    proc, url, token = start_server(root) if not args.url else (None, args.url, args.token)
    task = None
    try:
        client = PaiClient(url, token)
        ws = client.workspace("default")
        size = min(200, n)
        task = ws.labeling.create_task(
            f"bench-{secrets.token_hex(4)}",
            "image-classification",
            labels=["cat", "dog"],
            package_size=size,
            lines=[{"data": {"source": f"{i}.jpg"}} for i in range(n)],
        )
        for _ in range(20):  # warm up connections and caches
            client.me()
        ping = []
        for _ in range(n):
            t = time.perf_counter()
            client.me()
            ping.append(time.perf_counter() - t)
        submit = []
        done = 0
        while done < n:
            pkg = task.claim()
            for item in range(done, min(done + size, n)):
                t = time.perf_counter()
                task.submit(item, "cat" if item % 2 else "dog", client_id=f"bench-{item}")
                submit.append(time.perf_counter() - t)
            task.submit_package(pkg)
            done += size
        assert task.stats().labeled == n
        p50, p99 = percentiles(submit)
        b50, b99 = percentiles(ping)
        print(f"{n:,} submissions through the client, loopback")
        print(f"{'':<22}{'p50 ms':>9}{'p99 ms':>9}")
        print(f"{'submit answer':<22}{p50:>9.2f}{p99:>9.2f}")
        print(f"{'GET /me (baseline)':<22}{b50:>9.2f}{b99:>9.2f}")
        print(f"{'ratio':<22}{p50 / b50:>8.1f}x{p99 / b99:>8.1f}x")
        return {"n": n, "submit_p50_ms": p50, "submit_p99_ms": p99, "ping_p50_ms": b50, "ping_p99_ms": b99}
    finally:
        if proc is not None:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(30)
        elif task is not None:
            task.delete()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
