"""What the sidebar reads of a run over REST: its steps done out of all, and the tail of a step's log."""

from __future__ import annotations

import pytest

from pai_lab.client.pipelines import PipelineRunError
from pai_lab.errors import BadInput
from pai_lab.pipelines import Pipeline, PipelineParameter, component


@component(outputs=[PipelineParameter("n", int)])
def chatty(lines: int = 30):
    for i in range(lines):
        print(f"line {i}", flush=True)
    return {"n": lines}


@component
def fail(n: int):
    raise SystemExit(f"refusing {n}")


def test_runs_list_their_steps_done_and_a_log_answers_its_tail(live_server, unique_name, cli):
    ws = live_server.client().create_workspace(unique_name("progress"))
    talked = chatty.as_step(name="chatty")
    pipeline = Pipeline(steps=[fail.as_step(name="fail", inputs={"n": talked.outputs["n"]})])
    run = ws.pipelines.run(pipeline, arguments={}, name="progress")
    with pytest.raises(PipelineRunError):
        run.wait_for_completion(show_outputs=False, timeout=120)
    detail = run.detail
    assert detail.status == "Failed"
    assert (detail.steps_total, detail.steps_done) == (2, 2)
    listed = {r.id: r for r in ws.pipelines.list()}
    assert (listed[run.id].steps_total, listed[run.id].steps_done) == (2, 2)

    base = f"/pipelines/runs/{run.id}/logs"
    tail = ws._get(base, params={"node": "chatty", "tail": 5})
    assert [(t["offset"], t["line"]) for t in tail] == [(i, f"line {i}") for i in range(25, 30)]
    page = ws._get(base, params={"node": "chatty", "page_offset": 0, "page_size": 2})
    assert [t["line"] for t in page] == ["line 0", "line 1"]
    assert run.get_logs("chatty", tail=2) == ["line 28", "line 29"]
    rc, out, _ = cli("pipeline", "logs", run.id, "--node", "chatty", "--tail", "3", "-w", ws.name)
    assert rc == 0 and out.splitlines() == ["line 27", "line 28", "line 29"]
    with pytest.raises(BadInput, match="tail"):
        ws._get(base, params={"node": "chatty", "tail": 10001})
