"""The run panel (``display(run)``) against a real `pai server`: it follows the run as it goes, its buttons
drive the run through the client, it escapes what members wrote, and it stops polling when the run ends or
the panel is closed."""

from __future__ import annotations

import os
import re
import time

import pytest

from pai_lab.pipelines import Pipeline, PipelineParameter, component
from tests.fixtures.training import wait_for


@pytest.fixture
def ws(live_server, unique_name):
    ws = live_server.client().create_workspace(unique_name("plw"))
    ws.members.add("guest", ["Guest"])
    return ws


def run_state(panel) -> str:
    return re.search(r"</code> · <span[^>]*>(\w+)</span>", panel.header.value).group(1)


def step_states(panel) -> dict[str, str]:
    return dict(re.findall(r"<tr><td>([\w-]+)</td><td><span[^>]*>(\w+)</span>", panel.steps.value))


def enabled(panel) -> set[str]:
    return {action for action, button in panel.buttons.items() if not button.disabled}


def test_the_panel_follows_a_run_and_its_buttons_suspend_and_resume_it(ws, tmp_path):
    gate = str(tmp_path / "gate")

    @component(outputs=[PipelineParameter("note", str)])
    def gated():

        print("<script>alert(1)</script>", flush=True)
        while not os.path.exists(gate):
            time.sleep(0.05)
        return {"note": "<img src=x onerror=alert(2)>"}

    @component(inputs=[PipelineParameter("note", str)], outputs=[PipelineParameter("echo", str)])
    def then(note: str):
        print("then ran")
        return {"echo": note}

    first = gated.as_step(name="gated")
    last = then.as_step(name="then", inputs={"note": first.outputs["note"]})
    run = ws.pipelines.run(Pipeline(steps=[last], outputs={"echo": last.outputs["echo"]}), name="watched", cache=False)
    panel = run.monitor(refresh=0.05)
    assert panel.polling
    wait_for(lambda: step_states(panel).get("gated") == "Running")
    assert ">gated</text>" in panel.graph.value and ">then</text>" in panel.graph.value  # the DAG, no graphviz
    assert "<title>gated (" in panel.graph.value and "fill='#6ea8fe'" in panel.graph.value  # coloured Running
    # the log pane opens on the running step; a log line is text in a text area, never markup
    assert panel.step.value == "gated"
    wait_for(lambda: panel.log_view.value == "<script>alert(1)</script>")
    assert enabled(panel) == {"terminate", "suspend"}

    panel.buttons["suspend"].click()
    wait_for(lambda: run_state(panel) == "Suspended")
    assert enabled(panel) == {"terminate", "resume"}
    open(gate, "w").close()
    wait_for(lambda: step_states(panel)["gated"] == "Succeeded")
    assert step_states(panel)["then"] == "Initialized"  # held: no new step starts while suspended
    assert panel.polling  # a suspended run still moves

    panel.buttons["resume"].click()
    wait_for(lambda: run_state(panel) == "Succeeded")
    wait_for(lambda: not panel.polling)  # the run ended: polling stopped
    assert step_states(panel) == {"gated": "Succeeded", "then": "Succeeded"}
    assert panel.graph.value.count("fill='#a3cfbb'") == 2
    assert enabled(panel) == set()
    assert re.search(r"<tr><td>then</td>.*?<td>\d+\.\d s</td>", panel.steps.value)  # a duration per step
    # the output, a member's string, is shown escaped
    assert "<td>echo</td><td>then</td><td>parameters</td>" in panel.outputs.value
    assert "&lt;img src=x onerror=alert(2)&gt;" in panel.outputs.value and "<img" not in panel.outputs.value
    panel.step.value = "then"
    assert panel.log_view.value == "then ran"
    panel.close()


def test_retry_from_the_panel_runs_the_failed_step_again_and_a_guest_is_refused(ws, live_server, tmp_path):
    flag = str(tmp_path / "flag")

    @component(outputs=[PipelineParameter("v", int)])
    def flaky():
        if not os.path.exists(flag):
            raise RuntimeError("<b>flag</b> is missing")
        print("flaky ran")
        return {"v": 1}

    run = ws.pipelines.run(Pipeline(steps=[flaky.as_step(name="flaky")]), name="flaky", cache=False)
    panel = run.monitor(refresh=0.05)
    wait_for(lambda: not panel.polling)
    assert run_state(panel) == "Failed" and step_states(panel) == {"flaky": "Failed"}
    for shown in (panel.header.value, panel.steps.value):  # the log tail in the reason, escaped
        assert "RuntimeError: &lt;b&gt;flag&lt;/b&gt; is missing" in shown and "<b>flag" not in shown
    assert panel.step.value == "flaky" and "RuntimeError: <b>flag</b> is missing" in panel.log_view.value
    assert enabled(panel) == {"retry"}

    # a Guest sees the run but may not retry it: the refusal shows in the panel, which lives on
    guest = live_server.client("guest").workspace(ws.name).pipelines.get(run.id)
    guest_panel = guest.monitor(refresh=0)
    guest_panel.buttons["retry"].click()
    assert "retry: &#x27;guest&#x27; (Guest) may not pipeline.manage" in guest_panel.message.value
    assert run_state(guest_panel) == "Failed" and not guest_panel.polling
    guest_panel.close()

    open(flag, "w").close()
    panel.buttons["retry"].click()
    assert panel.polling  # retried: the panel follows the run again
    wait_for(lambda: run_state(panel) == "Succeeded")
    wait_for(lambda: not panel.polling)
    assert "attempt 2" in panel.header.value and panel.message.value == ""
    assert panel.log_view.value.endswith("flaky ran")  # read on into the new attempt's log
    panel.close()


def test_terminate_from_the_panel_and_a_closed_panel_stops_polling(ws):
    @component(outputs=[PipelineParameter("done", int)])
    def slow():

        print("started", flush=True)
        time.sleep(120)
        return {"done": 1}

    @component(inputs=[PipelineParameter("done", int)])
    def after(done: int):
        print("never")

    first = slow.as_step(name="slow")
    run = ws.pipelines.run(
        Pipeline(steps=[after.as_step(name="after", inputs={"done": first.outputs["done"]})]), name="slow", cache=False
    )
    panel, closed = run.monitor(refresh=0.05), ws.pipelines.get(run.id).monitor(refresh=0.05)
    wait_for(lambda: step_states(panel).get("slow") == "Running")
    closed.close()
    wait_for(lambda: not closed.polling)  # closed while the run goes on
    assert run.get_status() == "Running" and panel.polling

    panel.buttons["terminate"].click()
    wait_for(lambda: run_state(panel) == "Terminated")
    wait_for(lambda: not panel.polling)
    assert step_states(panel) == {"slow": "Terminated", "after": "Skipped"}
    assert enabled(panel) == {"retry"}
    panel.step.value = "after"
    assert panel.log_view.value == "(after is Skipped: no log)"
    panel.close()
