"""The driver's dealings with Dask: submitting a round's ready steps, fetching the results of the tasks
that ended, ending a run's warm runners on the workers.

Each call to the Dask client from the driver's thread is a round trip through the client's event loop,
so a round makes as few as it can: its tasks go in one ``map`` (one for the steps that run alone, one
for batches), the results of the tasks that ended come in one ``gather``, and a plan goes as JSON text,
which Dask hands to the task as it is instead of walking it for references to other tasks.

A wide fan-out is submitted in batches: when more FunctionOperator or built-in steps are ready at once
than ``BATCHES_PER_THREAD`` a cluster thread, they go in ``BATCHES_PER_THREAD`` tasks a thread (at most
``MAX_BATCH`` steps each), each running its steps one after another in the run's warm runner
(:func:`pai_lab.pipelines.executors.run_steps`), so Dask schedules a few tasks instead of one per step.
"""

from __future__ import annotations

import json
import logging
import math

from pai_lab.pipelines.executors import run_step, run_steps
from pai_lab.pipelines.progress import BatchProgress, progress_path

log = logging.getLogger("pai_lab.pipelines")
BATCHES_PER_THREAD = 4  # a wide fan-out's ready steps go in about this many tasks per cluster thread
MAX_BATCH = 16


def submit(driver, ready: list[tuple[str, dict]]) -> None:
    """Submit the ready warm steps (name, plan): a task each up to BATCHES_PER_THREAD a cluster thread,
    else in batches, each with its progress file."""
    size = max(1, min(MAX_BATCH, math.ceil(len(ready) / (BATCHES_PER_THREAD * driver.threads)))) if ready else 1
    alone: list[tuple[str, list, str]] = []  # (task key, its steps, its plan(s) as JSON)
    batches: list[tuple[str, list, str]] = []
    for at in range(0, len(ready), size):
        batch = ready[at : at + size]
        first = batch[0][0]
        if len(batch) == 1:
            alone.append((f"pai-pipeline-{driver.run_id}-{first}-{driver.attempt}", batch, json.dumps(batch[0][1])))
            continue
        path = progress_path(driver.work_dir, first, driver.attempt)
        plans = json.dumps([{**plan, "progress": str(path)} for _, plan in batch])
        batches.append((f"pai-pipeline-{driver.run_id}-{first}-{driver.attempt}-x{len(batch)}", batch, plans))
        driver.batched.update({name: i for i, (name, _) in enumerate(batch)})
    for task, tasks in ((run_step, alone), (run_steps, batches)):
        if not tasks:
            continue
        futures = driver.client.map(task, [t[2] for t in tasks], key=[t[0] for t in tasks], pure=False)
        for (_, batch, _), future in zip(tasks, futures):
            if task is run_steps:
                path = progress_path(driver.work_dir, batch[0][0], driver.attempt)
                driver.batches[future.key] = BatchProgress(path, {p["node_id"]: n for n, p in batch}, future)
            future.add_done_callback(lambda _f: driver.wake.set())
            for name, _ in batch:
                driver.futures[name] = future


def results(client, futures: list) -> dict[int, object]:
    """The results of tasks that ended, by the future's id: the Dask ones fetched in one call; a task that
    failed (a lost worker, a cancelled task) as a failed step's result. A platform step's future (the
    control plane's pool) answers on its own."""
    found: dict[int, object] = {}
    finished = [f for f in futures if getattr(f, "status", None) == "finished" and hasattr(f, "client")]
    try:
        found.update(zip(map(id, finished), client.gather(finished) if finished else []))
    except Exception:  # noqa: BLE001 - one was lost meanwhile: each on its own below
        found.clear()
    for future in futures:
        if id(future) not in found:
            try:
                found[id(future)] = future.result()
            except Exception as exc:  # noqa: BLE001 - a lost worker, a cancelled task
                found[id(future)] = {"exit_code": -1, "error": f"the step's Dask task failed: {exc}"}
    return found


def close_runners(client, run_id: str) -> None:
    """End the run's warm step runners on every worker (they would end idle anyway)."""
    if client is None:
        return
    from pai_lab.pipelines import runner

    runner.close_runners(run_id)  # workers of an in-process cluster share this process's runners
    try:
        client.run(runner.close_runners_soon, run_id, wait=False)  # a lost worker must not hold the run's end
    except Exception:  # a worker that is gone took its runners with it
        log.debug("run %s: could not reach every worker to end its runners", run_id, exc_info=True)
