"""Twenty labelers at once on one pool, on SQLite and PostgreSQL: the benchmark's smoke run, whose own
checks against the server's records fail it if a package is claimed twice or an answer is lost or doubled."""

from __future__ import annotations

import runpy
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "labelers.py"


def test_twenty_labelers_on_one_pool_claim_each_package_once_and_keep_every_answer(postgres_server, capsys):
    main = runpy.run_path(str(BENCH))["main"]
    results = main(["--smoke", "--postgres-url", postgres_server])
    assert set(results) == {"sqlite", "postgresql"}
    for db, r in results.items():
        assert r["answers"] > 0 and r["packages_claimed"] >= r["packages_submitted"] > 0, (db, r)
        assert r["claim"][0] <= r["claim"][1] and r["answer"][0] <= r["answer"][1], (db, r)
        assert "cores" in r["machine"] and "load average" in r["machine"], (db, r)
    out = capsys.readouterr().out
    assert "20 labelers" in out and "no package claimed twice, no answer lost or doubled" in out
    assert out.count("load average") == 2  # the machine beside each database's figures
