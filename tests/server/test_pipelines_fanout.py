"""A wide fan-out: more ready steps than the cluster has threads go to Dask in batches (a few tasks run
many steps one after another in the run's warm runner), yet each step keeps what a step has: its own
folder, PAI_* variables, log, state and outputs, a failure of its own, and a step after it that starts
once the steps it waits on have succeeded."""

from __future__ import annotations

import os

import psutil
import pytest

from pai_lab.client.pipelines import PipelineRunError
from pai_lab.pipelines import Pipeline, PipelineParameter, component
from pai_lab.pipelines.runner import SPARE_RUNNERS
from tests.conftest import start_pai_server
from tests.fixtures.training import wait_for

WIDTH = 64  # wider than the batching threshold of a cluster of up to 16 threads


def test_a_wide_fan_out_keeps_each_steps_folder_variables_log_outputs_and_failure(live_server, unique_name):
    ws = live_server.client().create_workspace(unique_name("fan"))

    @component(inputs=[PipelineParameter("i", int)], outputs=[PipelineParameter("seen", str)])
    def leaf(i: int, context=None):
        print(f"leaf {i}")
        if i == 13:
            raise ValueError("thirteen")
        return {"seen": f"{i}|{os.environ['PAI_NODE_ID']}|{os.getcwd()}|{context.work_dir}"}

    @component(
        inputs=[PipelineParameter("a", str), PipelineParameter("b", str)], outputs=[PipelineParameter("both", str)]
    )
    def join(a: str, b: str):
        return {"both": a.split("|")[0] + "+" + b.split("|")[0]}

    leaves = [leaf.as_step(name=f"l{i}", inputs={"i": i}) for i in range(WIDTH)]
    last = WIDTH - 1
    after = join.as_step(name="after", inputs={"a": leaves[0].outputs["seen"], "b": leaves[last].outputs["seen"]})
    run = ws.pipelines.run(Pipeline(steps=[*leaves, after]), cache=False)
    with pytest.raises(PipelineRunError, match="step 'l13' failed: the step's process exited with code 1"):
        run.wait_for_completion(show_outputs=False, timeout=600)
    nodes = {n.name: n for n in run.detail.nodes}
    assert {name for name, n in nodes.items() if n.status != "Succeeded"} == {"l13"}
    assert "ValueError: thirteen" in nodes["l13"].reason  # its own log's tail
    assert all(n.started_at and n.finished_at and n.started_at <= n.finished_at for n in nodes.values())
    for i in range(WIDTH):
        assert run.get_logs(f"l{i}")[0] == f"leaf {i}"
        if i == 13:
            continue
        (seen,) = run.get_outputs(node_id=f"l{i}")
        index, node_id, cwd, work_dir = seen.value.split("|")
        assert (index, node_id) == (str(i), nodes[f"l{i}"].node_id)
        assert cwd == work_dir and cwd.endswith(f"/{run.id}/l{i}")
    (both,) = run.get_outputs(node_id="after")
    assert both.value == f"0+{last}"


def test_terminating_a_wide_fan_out_ends_the_running_steps_and_terminates_those_not_begun(live_server, unique_name):
    ws = live_server.client().create_workspace(unique_name("fanstop"))

    @component(inputs=[PipelineParameter("i", int)], outputs=[PipelineParameter("done", int)])
    def slow(i: int):
        import time

        print(f"slow {i}", flush=True)
        time.sleep(120)
        return i

    run = ws.pipelines.run(Pipeline(steps=[slow.as_step(name=f"s{i}", inputs={"i": i}) for i in range(WIDTH)]))
    wait_for(lambda: any(n.status == "Running" for n in run.refresh().nodes), 120)
    run.terminate()
    wait_for(lambda: run.refresh().status == "Terminated", 60)
    states = {n.status for n in run.detail.nodes}
    assert states == {"Terminated"}  # every step was submitted (in batches): none is left Initialized
    started = [n.name for n in run.detail.nodes if run.get_logs(n.name)]
    assert started and len(started) < WIDTH  # the steps not begun never ran
    with pytest.raises(PipelineRunError, match="terminated"):
        run.wait_for_completion(show_outputs=False)


def _runners(server) -> list[psutil.Process]:
    """The server's warm step runners (its children running pai_lab.pipelines.runner)."""
    found = []
    for proc in psutil.Process(server.proc.pid).children(recursive=True):
        try:
            if "pai_lab.pipelines.runner" in proc.cmdline() and proc.status() != psutil.STATUS_ZOMBIE:
                found.append(proc)
        except psutil.Error:
            continue
    return found


def _spares(server) -> set[int]:
    return {p.pid for p in _runners(server) if "--idle" in p.cmdline() and "PAI_RUN_ID" not in p.environ()}


def test_a_single_user_servers_runs_take_spare_runners_and_leave_only_spares_behind(tmp_path):
    """Without the sandbox, a run's steps run in spare runners started ahead (nothing of any run in
    them); when the run ends its runners end too, and spares are there again for the next run."""
    server = start_pai_server(tmp_path / "root")
    try:
        ws = server.client().workspace("default")

        @component(inputs=[PipelineParameter("i", int)], outputs=[PipelineParameter("pid", int)])
        def where(i: int):
            return os.getpid()

        def run_once():
            steps = [where.as_step(name=f"w{i}", inputs={"i": i}) for i in range(12)]
            run = ws.pipelines.run(Pipeline(steps=steps), cache=False, wait=True, show_outputs=False, timeout=300)
            return {o.value for o in run.get_outputs()}

        run_once()  # the first run finds no spare: it starts its runners, and the spares start
        wait_for(lambda: len(_spares(server)) == SPARE_RUNNERS and len(_runners(server)) == SPARE_RUNNERS, 60)
        ready = _spares(server)
        pids = run_once()
        assert pids and pids <= ready  # the steps ran in runners that were spares when the run began
        # the run's runners ended with it; new spares, none of them a runner of that run
        wait_for(lambda: len(_spares(server)) == SPARE_RUNNERS and len(_runners(server)) == SPARE_RUNNERS, 60)
        assert not _spares(server) & pids
    finally:
        server.stop()
