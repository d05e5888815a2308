"""The serving benchmark's event loops and printed report (benchmarks/serving_gateway.py measures)."""

from __future__ import annotations

LOOP_NAMES = {"asyncio": "asyncio's own", "uvloop": "uvloop"}


def uvloop_installed() -> bool:
    import importlib.util

    return importlib.util.find_spec("uvloop") is not None


def loops_for(asked: str | None, smoke: bool) -> list[str]:
    """The event loops to measure on, asyncio's first. Unasked: both where uvloop is installed (the smoke
    run: uvloop alone there, one loop keeps it short), asyncio's own elsewhere."""
    have = uvloop_installed()
    if asked is None:
        asked = ("uvloop" if smoke else "both") if have else "asyncio"
    if asked != "asyncio" and not have:
        raise SystemExit(f"--loop {asked}: uvloop is not installed (pip install uvloop)")
    return ["asyncio", "uvloop"] if asked == "both" else [asked]


def event_loops(loops: list[str]) -> str:
    """Which event loop(s) the servers run on, said beside the figures."""
    names = " and on ".join(LOOP_NAMES[loop] for loop in loops)
    if len(loops) == 1:
        return f"the pai_lab gateway on {names}, the tornado baseline on the same"
    return (
        f"the pai_lab gateway on {names}, the tornado baseline on each too (rows name the loop); ratios are "
        f"against the stronger tornado baseline of the row; 64 samples/request and TF REST on {loops[-1]}"
    )


def _beside(r: dict) -> str:
    return f"load {r['load']:.2f}, {r['generator']} {r['client_cpu'] * 100:.0f}% of a core"


def _stronger_tornado(row: dict) -> dict:
    return max((r for name, r in row.items() if name.startswith("tornado")), key=lambda r: r["rps"])


def report(results: dict, hidden: int) -> None:
    limits = results["in_process_samples_per_s"]
    loops = results["loops"]
    ours_name = f"pai_lab {loops[-1]}"
    print(f"machine: {results['machine']}")
    print(
        f"model: 784 -> {hidden} -> {hidden} -> 10; in-process: {limits[1]:,.0f} samples/s at batch 1, "
        f"{limits[64]:,.0f} at batch 64 (model time at batch 1: {1000 / limits[1]:.2f} ms)"
    )
    print(
        f"{'one sample/request':<20}{'server':<17}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}  errors   vs tornado"
        "  (load average at the end, the generator's CPU)"
    )
    for conc, row in results["one_sample"].items():
        base = _stronger_tornado(row)["rps"] or 1e-9
        for name, r in row.items():
            print(
                f"{'concurrency ' + str(conc):<20}{name:<17}{r['rps']:>9,.0f}{r['p50_ms']:>9.2f}{r['p99_ms']:>9.2f}"
                f"  {sum(r['errors'].values()):<7}  {r['rps'] / base:.2f}x  ({_beside(r)})"
            )
    for conc, row in results["one_sample"].items():
        if len(loops) > 1:
            gain = {s: row[f"{s} uvloop"]["rps"] / (row[f"{s} asyncio"]["rps"] or 1e-9) for s in ("pai_lab", "tornado")}
            print(
                f"concurrency {conc}: uvloop / asyncio req/s: pai_lab {gain['pai_lab']:.2f}x, "
                f"tornado {gain['tornado']:.2f}x"
            )
        if "bentoml" in row:
            ours, theirs = row[ours_name], row["bentoml"]
            print(
                f"concurrency {conc}: pai_lab / BentoML {ours['rps'] / (theirs['rps'] or 1e-9):.2f}x req/s, "
                f"p99 {ours['p99_ms'] / theirs['p99_ms']:.2f}x of BentoML's"
            )
        if "pai_lab TF REST" in row:
            print(
                f"concurrency {conc}: TF Serving REST (instances) / EAS JSON "
                f"{row['pai_lab TF REST']['rps'] / (row[ours_name]['rps'] or 1e-9):.2f}x req/s"
            )
    c1, model_ms = results["one_sample"][min(results["one_sample"])], 1000 / limits[1]
    tornado = _stronger_tornado(c1)
    print(
        f"median overhead at concurrency 1 over the model's own time: {c1[ours_name]['p50_ms'] - model_ms:.2f} ms"
        f" (tornado {tornado['p50_ms'] - model_ms:.2f} ms); pai_lab / tornado req/s at concurrency 1: "
        f"{c1[ours_name]['rps'] / (tornado['rps'] or 1e-9):.2f}x"
    )
    for name, r in results["batch64"].items():
        samples = r["rps"] * 64
        print(
            f"64 samples/request  {name:<34}{samples:>10,.0f} samples/s = {samples / limits[64]:.2f}x the "
            f"in-process limit at batch 64 (p99 {r['p99_ms']:.1f} ms, errors {sum(r['errors'].values())}; "
            f"{_beside(r)})"
        )
    print(f"BentoML: {results['bentoml']}")
