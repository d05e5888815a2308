"""The registry benchmark runs end to end on a small folder and prefix (its numbers go to benchmarks/README.md)."""

import importlib.util
from pathlib import Path

import pytest


@pytest.mark.s3
def test_benchmark_smoke(tmp_path):
    path = Path(__file__).parents[2] / "benchmarks" / "datasets_registry.py"
    spec = importlib.util.spec_from_file_location("datasets_registry_bench", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    results = bench.run(files=400, objects=40, workdir=str(tmp_path))
    assert results["files"] == 400 and results["objects"] == 40
    for key in ("register_ratio", "rescan_ratio", "diff_s", "s3_ratio"):
        assert results[key] > 0
