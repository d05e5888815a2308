"""The DAG as graphviz source, and as SVG drawn here where graphviz is not installed; the run's step
table and outputs as HTML. Every user string is escaped: a step's reason or an output's value is
text in another member's notebook, never live HTML."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from html import escape
from typing import Any

COLOURS = {
    "Initialized": "#e0e0e0",
    "ReadyToSchedule": "#cfe2ff",
    "Starting": "#9ec5fe",
    "WorkflowServiceStarting": "#9ec5fe",
    "Running": "#6ea8fe",
    "Suspended": "#ffe69c",
    "Succeeded": "#a3cfbb",
    "Failed": "#f1aeb5",
    "Terminated": "#c5c5c5",
    "Skipped": "#f8f9fa",
    "Unknown": "#ffffff",
}


def _q(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def dot_of(steps: list[tuple[str, str, list[str]]], status: dict[str, str] | None = None) -> str:
    """graphviz source of steps given as (name, operator, the steps it waits on)."""
    lines = ["digraph pipeline {", "  rankdir=TB;", '  node [shape=box, style="rounded,filled", fillcolor="#ffffff"];']
    for name, operator, _deps in steps:
        label = f"{name}\n{operator}"
        state = (status or {}).get(name)
        fill = f", fillcolor={_q(COLOURS.get(state, '#ffffff'))}" if state else ""
        tip = f"\n[{state}]" if state else ""
        lines.append(f"  {_q(name)} [label={_q(label + tip)}{fill}];")
    for name, _operator, deps in steps:
        for dep in deps:
            lines.append(f"  {_q(dep)} -> {_q(name)};")
    lines.append("}")
    return "\n".join(lines)


def dot_source(graph, status: dict[str, str] | None = None) -> str:
    return dot_of(
        [
            (name, step.operator.get("metadata", {}).get("identifier", ""), step.depends)
            for name, step in graph.steps.items()
        ],
        status,
    )


def svg(source: str) -> str | None:
    """The drawing, when the graphviz package and its dot program are installed."""
    try:
        import graphviz

        return graphviz.Source(source)._repr_image_svg_xml()
    except Exception:  # noqa: BLE001 - no package, or no dot program
        return None


def graph_html(graph, status: dict[str, str] | None = None) -> str:
    """The DAG drawn by :func:`dag_svg` (no graphviz needed), coloured by ``status`` when given."""
    steps = [
        (name, step.operator.get("metadata", {}).get("identifier", ""), step.depends)
        for name, step in graph.steps.items()
    ]
    return f"<div class='pai-lab-pipeline'>{dag_svg(steps, status)}</div>"


BOX_WIDTH, BOX_HEIGHT, GAP_X, GAP_Y = 130, 34, 12, 22
MAX_ROW = 12  # boxes side by side in one row; a wider layer (a fan-out) goes on in the rows under it


def _layers(steps: list[tuple[str, str, list[str]]]) -> dict[str, int]:
    """A step's layer: one more than its deepest dependency's (dependencies outside the steps left out;
    a cycle, which the server refuses, is cut where it closes)."""
    deps = {name: [d for d in depends if d != name] for name, _op, depends in steps}
    deps = {name: [d for d in found if d in deps] for name, found in deps.items()}
    layer: dict[str, int] = {}
    for start in deps:
        stack, visiting = [(start, False)], set()
        while stack:
            name, ready = stack.pop()
            if name in layer:
                continue
            if ready:
                layer[name] = 1 + max((layer.get(d, 0) for d in deps[name]), default=-1)
                continue
            visiting.add(name)
            stack.append((name, True))
            stack += [(d, False) for d in deps[name] if d not in layer and d not in visiting]
    return layer


def _label(text: str, size: int = 18) -> str:
    return escape(text if len(text) <= size else text[: size - 1] + "…")


def dag_svg(steps: list[tuple[str, str, list[str]]], status: dict[str, str] | None = None) -> str:
    """The DAG as SVG, top to bottom, with no graphviz: each step a box (its name, its operator, and its
    state's colour when ``status`` gives one) in the row of its layer, an arrow from each step it waits on.
    As the sidebar draws it (labextension/src/pipelines.ts ``layoutDag``)."""
    layer = _layers(steps)
    rows: list[list[str]] = []
    for depth in range(max(layer.values(), default=-1) + 1):
        names = [name for name, _op, _deps in steps if layer[name] == depth]
        rows += [names[i : i + MAX_ROW] for i in range(0, len(names), MAX_ROW)]
    widest = max((len(r) for r in rows), default=1)
    width = widest * BOX_WIDTH + (widest + 1) * GAP_X
    height = len(rows) * BOX_HEIGHT + (len(rows) + 1) * GAP_Y
    place: dict[str, tuple[float, float]] = {}
    for r, row in enumerate(rows):
        left = (width - (len(row) * BOX_WIDTH + (len(row) - 1) * GAP_X)) / 2
        for i, name in enumerate(row):
            place[name] = (left + i * (BOX_WIDTH + GAP_X), GAP_Y + r * (BOX_HEIGHT + GAP_Y))
    parts = [
        f"<svg xmlns='http://www.w3.org/2000/svg' class='pai-lab-pipeline-dag' width='{width:.0f}' "
        f"height='{height:.0f}' viewBox='0 0 {width:.0f} {height:.0f}' font-family='sans-serif' font-size='11'>",
        "<defs><marker id='pai-lab-arrow' viewBox='0 0 8 8' refX='8' refY='4' markerWidth='6' markerHeight='6' "
        "orient='auto'><path d='M0,0 L8,4 L0,8 z' fill='#777'/></marker></defs>",
    ]
    for name, _op, depends in steps:
        x2, y2 = place[name]
        for dep in depends:
            if dep in place and dep != name:
                x1, y1 = place[dep]
                parts.append(
                    f"<line x1='{x1 + BOX_WIDTH / 2:.0f}' y1='{y1 + BOX_HEIGHT:.0f}' x2='{x2 + BOX_WIDTH / 2:.0f}' "
                    f"y2='{y2:.0f}' stroke='#777' marker-end='url(#pai-lab-arrow)'/>"
                )
    for name, operator, _deps in steps:
        x, y = place[name]
        state = (status or {}).get(name, "")
        fill = COLOURS.get(state, "#ffffff")
        tip = f"{name} ({operator})" + (f": {state}" if state else "")
        parts.append(
            f"<g><title>{escape(tip)}</title><rect x='{x:.0f}' y='{y:.0f}' width='{BOX_WIDTH}' "
            f"height='{BOX_HEIGHT}' rx='5' fill='{fill}' stroke='#555'/>"
            f"<text x='{x + BOX_WIDTH / 2:.0f}' y='{y + 14:.0f}' text-anchor='middle'>{_label(name)}</text>"
            f"<text x='{x + BOX_WIDTH / 2:.0f}' y='{y + 27:.0f}' text-anchor='middle' fill='#555' font-size='9'>"
            f"{_label(state or operator, 22)}</text></g>"
        )
    parts.append("</svg>")
    return "".join(parts)


class Dot:
    """The source text of the DAG; ``render()`` and the SVG view need the graphviz package."""

    def __init__(self, source: str, graph, status: dict[str, str] | None):
        self.source = source
        self._graph = graph
        self._status = status

    def _graphviz(self):
        try:
            import graphviz
        except ImportError:
            return None
        return graphviz.Source(self.source)

    def render(self, *args, **kwargs):
        drawn = self._graphviz()
        if drawn is None:
            raise RuntimeError(
                "drawing the DAG needs the graphviz package and its dot program "
                "(pip install graphviz; apt install graphviz); .source has the text"
            )
        return drawn.render(*args, **kwargs)

    def _repr_html_(self) -> str:
        drawn = self._graphviz()
        if drawn is not None:
            try:
                return drawn._repr_image_svg_xml()
            except Exception:  # noqa: BLE001, S110 - the package without its dot program
                pass
        return graph_html(self._graph, self._status)

    def __str__(self) -> str:
        return self.source


# Run states a run no longer moves from (until a retry).
TERMINAL = ("Succeeded", "Failed", "Terminated", "Unknown")
_ACTIVE = ("Initialized", "ReadyToSchedule", "WorkflowServiceStarting", "Starting", "Running")
# The run states in which each action is offered. The server's service.py judges (a refused action answers
# its 409); this only greys out buttons that would be refused.
ACTIONS = {
    "terminate": (*_ACTIVE, "Suspended"),
    "suspend": _ACTIVE,
    "resume": ("Suspended",),
    "retry": ("Failed", "Terminated", "Unknown"),
}


def duration(started: datetime | None, finished: datetime | None, now: datetime | None = None) -> str:
    """How long a step ran (or has run so far), as 0.4 s, 12.3 s, 4 min 05 s."""
    if started is None:
        return ""
    end = (
        finished
        or now
        or (datetime.now(timezone.utc).replace(tzinfo=None) if started.tzinfo is None else datetime.now(started.tzinfo))
    )  # the store keeps naive UTC times
    seconds = max(0.0, (end - started).total_seconds())
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(int(seconds), 60)
    return f"{minutes} min {rest:02d} s"


def clip(text: str, size: int = 400) -> str:
    """A long reason's head (which step, why) and tail (a traceback's last lines), without the middle."""
    if len(text) <= size:
        return text
    return f"{text[: size // 3]} … {text[-(size - size // 3) :]}"


def badge(state: str) -> str:
    return (
        f"<span style='background:{COLOURS.get(state, '#ffffff')};padding:0 4px;border-radius:3px'>"
        f"{escape(state)}</span>"
    )


def nodes_graph_html(nodes) -> str:
    """A run's DAG coloured by its steps' states: graphviz's drawing when it is installed, else
    :func:`dag_svg`'s."""
    steps = [(n.name, n.identifier, n.depends) for n in nodes]
    status = {n.name: n.status for n in nodes}
    drawn = svg(dot_of(steps, status)) or dag_svg(steps, status)
    return f"<div class='pai-lab-pipeline-dag'>{drawn}</div>"


def steps_html(nodes, now: datetime | None = None) -> str:
    """The step table: state, cache hit, attempt, duration and the reason of a step that did not succeed."""
    rows = "".join(
        f"<tr><td>{escape(n.name)}</td><td>{badge(n.status)}</td><td>{'yes' if n.cached else ''}</td>"
        f"<td>{n.attempt or ''}</td><td>{duration(n.started_at, n.finished_at, now)}</td>"
        f"<td style='white-space:pre-wrap'>{escape(clip(n.reason))}</td></tr>"
        for n in nodes
    )
    return (
        "<table class='pai-lab-pipeline-steps'><tr style='text-align:left'><th>step</th><th>state</th>"
        f"<th>cache hit</th><th>attempt</th><th>duration</th><th>reason</th></tr>{rows}</table>"
    )


def _shown_value(value: Any) -> str:
    if isinstance(value, dict) and isinstance(value.get("location"), dict) and value["location"].get("uri"):
        return str(value["location"]["uri"])
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= 300 else text[:300] + "…"


def _type_of(metadata: dict | None) -> str:
    kind = (metadata or {}).get("type") or ""
    return ", ".join(map(str, kind)) if isinstance(kind, dict) else str(kind)


def outputs_html(outputs) -> str:
    """The run's outputs: a parameter's value, an artifact's location (a reference, never the data)."""
    if not outputs:
        return ""
    rows = "".join(
        f"<tr><td>{escape(o.name)}</td><td>{escape(o.producer)}</td><td>{escape(o.kind)}</td>"
        f"<td>{escape(_type_of(o.metadata))}</td>"
        f"<td><code>{escape(_shown_value(o.value))}</code></td></tr>"
        for o in outputs
    )
    return (
        "<table class='pai-lab-pipeline-outputs'><tr style='text-align:left'><th>output</th><th>step</th>"
        f"<th>kind</th><th>type</th><th>value</th></tr>{rows}</table>"
    )
