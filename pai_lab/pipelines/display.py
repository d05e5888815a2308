"""The DAG as graphviz source, and as plain HTML where graphviz is not installed."""

from __future__ import annotations

from html import escape

COLOURS = {
    "Initialized": "#e0e0e0", "ReadyToSchedule": "#cfe2ff", "Starting": "#9ec5fe", "WorkflowServiceStarting": "#9ec5fe",
    "Running": "#6ea8fe", "Suspended": "#ffe69c", "Succeeded": "#a3cfbb", "Failed": "#f1aeb5",
    "Terminated": "#c5c5c5", "Skipped": "#f8f9fa", "Unknown": "#ffffff",
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
    return dot_of([(name, step.operator.get("metadata", {}).get("identifier", ""), step.depends)
                   for name, step in graph.steps.items()], status)


def svg(source: str) -> str | None:
    """The drawing, when the graphviz package and its dot program are installed."""
    try:
        import graphviz

        return graphviz.Source(source)._repr_image_svg_xml()
    except Exception:  # noqa: BLE001 - no package, or no dot program
        return None


def graph_html(graph, status: dict[str, str] | None = None) -> str:
    """A table of the steps in running order, each with what it waits on (and its state)."""
    rows = []
    for name, step in graph.steps.items():
        state = (status or {}).get(name, "")
        colour = COLOURS.get(state, "#ffffff")
        rows.append(f"<tr style='background:{colour}'><td>{escape(name)}</td>"
                    f"<td>{escape(step.operator.get('metadata', {}).get('identifier', ''))}</td>"
                    f"<td>{escape(', '.join(step.depends) or '—')}</td>"
                    + (f"<td>{escape(state)}</td>" if status is not None else "") + "</tr>")
    head = "<th>step</th><th>operator</th><th>after</th>" + ("<th>status</th>" if status is not None else "")
    return (f"<table class='pai-lab-pipeline'><tr style='text-align:left'>{head}</tr>{''.join(rows)}</table>")


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
            raise RuntimeError("drawing the DAG needs the graphviz package and its dot program "
                               "(pip install graphviz; apt install graphviz); .source has the text")
        return drawn.render(*args, **kwargs)

    def _repr_html_(self) -> str:
        drawn = self._graphviz()
        if drawn is not None:
            try:
                return drawn._repr_image_svg_xml()
            except Exception:  # noqa: BLE001 - the package without its dot program
                pass
        return graph_html(self._graph, self._status)

    def __str__(self) -> str:
        return self.source
