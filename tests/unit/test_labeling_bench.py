"""Tiny runs of the labeling benchmarks, so they keep working (no timing is asserted)."""

from __future__ import annotations

import runpy
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"


def test_export_benchmark_runs(capsys):
    main = runpy.run_path(str(BENCH / "labeling_export.py"))["main"]
    results = main(["--items", "40"])
    assert set(results["ours"]) == {"itag", "coco", "yolo"}
    assert all(r["items_per_s"] > 0 and r["peak_mib"] > 0 for r in results["ours"].values())
    out = capsys.readouterr().out
    assert "items/s" in out and "coco" in out


def test_submit_benchmark_runs(live_server, capsys):
    main = runpy.run_path(str(BENCH / "labeling_submit.py"))["main"]
    results = main(["--n", "10", "--url", live_server.url, "--token", live_server.token])
    assert results["n"] == 10 and 0 < results["submit_p50_ms"] <= results["submit_p99_ms"]
    assert "p99 ms" in capsys.readouterr().out
