"""What the run panel and the static run view write, from a run's detail: durations, long reasons, outputs."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

from pai_lab.pipelines import display
from pai_lab.pipelines.schemas import PipelineNode, PipelineOutput

T0 = datetime(2026, 1, 1, 12, 0, 0)


def test_a_duration_reads_in_seconds_then_minutes_and_runs_on_while_a_step_runs():
    assert display.duration(T0, T0 + timedelta(seconds=0.42)) == "0.4 s"
    assert display.duration(T0, T0 + timedelta(seconds=65)) == "1 min 05 s"
    assert display.duration(T0, None, now=T0 + timedelta(seconds=3)) == "3.0 s"  # still running
    assert display.duration(None, None) == ""  # not started


def test_a_long_reason_keeps_which_step_failed_and_the_last_lines_of_its_log():
    reason = "step 'train' failed: exit 1\n" + "x\n" * 500 + "ValueError: bad column 'age'"
    shown = display.clip(reason)
    assert len(shown) < 420 and shown.startswith("step 'train' failed") and shown.endswith("bad column 'age'")
    assert display.clip("short") == "short"


def test_steps_and_outputs_are_escaped_and_an_artifact_shows_its_location():
    node = PipelineNode(
        name="train",
        node_id="n1",
        identifier="op@v1",
        depends=[],
        status="Failed",
        reason="<script>alert(1)</script>",
        attempt=2,
        started_at=T0,
        finished_at=T0 + timedelta(seconds=2),
    )
    steps = display.steps_html([node])
    assert "&lt;script&gt;" in steps and "<script" not in steps and "<td>2.0 s</td>" in steps
    outputs = display.outputs_html(
        [
            PipelineOutput(
                name="model",
                kind="artifacts",
                producer="train",
                run_id="r1",
                value={"location": {"uri": "file:///runs/r1/train/model.json"}},
                metadata={"type": {"Model": {}}},
            ),
            PipelineOutput(name="note", kind="parameters", producer="train", run_id="r1", value="<b>hi</b>"),
        ]
    )
    assert "<td>Model</td><td><code>file:///runs/r1/train/model.json</code>" in outputs
    assert "&lt;b&gt;hi&lt;/b&gt;" in outputs and "<b>hi" not in outputs
    assert display.outputs_html([]) == ""


def _node(name: str, depends: list[str], status: str, identifier: str = "fn@v1") -> PipelineNode:
    return PipelineNode(name=name, node_id=name, identifier=identifier, depends=depends, status=status)


def test_the_run_s_dag_is_drawn_as_svg_without_graphviz_layer_by_layer_coloured_by_state():

    nodes = [
        _node("make", [], "Succeeded"),
        _node("<b>", [], "Skipped", identifier="<script>x</script>"),
        _node("train", ["make", "<b>"], "Running"),
        _node("score", ["train", "make"], "Initialized"),
    ]
    assert "<svg" in display.nodes_graph_html(nodes)  # graphviz's drawing where installed, else this one:
    html = display.dag_svg([(n.name, n.identifier, n.depends) for n in nodes], {n.name: n.status for n in nodes})
    assert html.count("<rect") == 4 and html.count("<line") == 4  # a box a step, an arrow a dependency
    boxes = dict(re.findall(r"<title>([^<(]+?) \(.*?</title><rect x='\d+' y='(\d+)'", html))
    assert int(boxes["make"]) < int(boxes["train"]) < int(boxes["score"])  # each below what it waits on
    assert boxes["make"] == boxes["&lt;b&gt;"]  # the first layer side by side
    assert f"fill='{display.COLOURS['Running']}'" in html and f"fill='{display.COLOURS['Succeeded']}'" in html
    assert "<script" not in html and "&lt;script&gt;" in html and "<b>" not in html  # names are text


def test_a_wide_fan_out_wraps_into_rows_and_a_cycle_does_not_hang_the_drawing():
    steps = [("src", "fn", [])] + [(f"leaf-{i}", "fn", ["src"]) for i in range(30)]
    svg = display.dag_svg(steps)
    width = int(re.search(r"width='(\d+)'", svg).group(1))
    assert svg.count("<rect") == 31 and width < 13 * (display.BOX_WIDTH + display.GAP_X)
    looped = display.dag_svg([("a", "fn", ["b"]), ("b", "fn", ["a"])])  # the server refuses these; still drawn
    assert looped.count("<rect") == 2
