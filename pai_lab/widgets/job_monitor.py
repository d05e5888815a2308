"""``job.monitor()``: a live panel for one training job.

State per rank, a log tail per pod, the epoch metrics (train and validation of each metric on one
chart against epoch), the batch points of one metric against step, a stop button and the Dask
dashboard link, refreshed from the control plane until the job ends.
"""

from __future__ import annotations

import html
import threading
import time

import ipywidgets as w

TERMINAL = ("Succeeded", "Failed", "Stopped")
COLOURS = {
    "Succeeded": "#2e7d32",
    "Failed": "#c62828",
    "Stopped": "#6d4c41",
    "Running": "#1565c0",
    "Queuing": "#ef6c00",
    "Creating": "#757575",
    "Stopping": "#6d4c41",
    "Pending": "#757575",
}
PALETTE = ["#1565c0", "#c62828", "#2e7d32", "#6a1b9a", "#ef6c00", "#00838f"]


def _badge(state: str) -> str:
    return f'<span style="color:{COLOURS.get(state, "#000")};font-weight:600">{html.escape(state)}</span>'


def _tick(value: float) -> str:
    return f"{value:.4g}"


def curve_svg(
    series: dict[str, list[tuple[float, float]]],
    width: int = 420,
    height: int = 180,
    *,
    x_label: str = "step",
    y_label: str = "",
    markers: bool = False,
    stroke: float = 1.5,
) -> str:
    """An SVG line chart, one line per series, with labelled axes and a legend; no plotting library needed."""
    points = [p for values in series.values() for p in values]
    if not points:
        return f'<svg width="{width}" height="{height}"><text x="10" y="20">no points yet</text></svg>'
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    x0, x1, y0, y1 = min(xs), max(xs), min(ys), max(ys)
    left, right, top, bottom = 58, 10, 10, 34  # room for tick values and axis labels
    plot_w, plot_h = width - left - right, height - top - bottom
    sx = plot_w / ((x1 - x0) or 1)
    sy = plot_h / ((y1 - y0) or 1)

    def at(x: float, y: float) -> str:
        return f"{left + (x - x0) * sx:.1f},{top + (y1 - y) * sy:.1f}"

    base = top + plot_h
    parts = [
        f'<svg width="{width}" height="{height}" style="font:10px sans-serif" class="pai-lab-chart">',
        f'<line x1="{left}" y1="{top}" x2="{left}" y2="{base}" stroke="#888"/>',
        f'<line x1="{left}" y1="{base}" x2="{left + plot_w}" y2="{base}" stroke="#888"/>',
        f'<text x="{left - 4}" y="{top + 8}" text-anchor="end">{_tick(y1)}</text>',
        f'<text x="{left - 4}" y="{base}" text-anchor="end">{_tick(y0)}</text>',
        f'<text x="{left}" y="{base + 12}" text-anchor="middle">{_tick(x0)}</text>',
        f'<text x="{left + plot_w}" y="{base + 12}" text-anchor="end">{_tick(x1)}</text>',
        f'<text class="x-label" x="{left + plot_w / 2:.0f}" y="{height - 4}" text-anchor="middle">'
        f"{html.escape(x_label)}</text>",
        f'<text class="y-label" transform="translate(12,{top + plot_h / 2:.0f}) rotate(-90)" '
        f'text-anchor="middle">{html.escape(y_label)}</text>',
    ]
    # the legend, top right over a light box, so it stays readable where a line passes
    legend = [
        f'<rect x="{width - 114}" y="{top - 4}" width="112" height="{12 * len(series) + 4}" '
        'fill="#fff" fill-opacity="0.8"/>'
    ]
    for i, (name, values) in enumerate(series.items()):
        colour = PALETTE[i % len(PALETTE)]
        coords = " ".join(at(x, y) for x, y in sorted(values))
        parts.append(
            f'<polyline fill="none" stroke="{colour}" stroke-width="{stroke}" points="{coords}">'
            f"<title>{html.escape(name)}</title></polyline>"
        )
        if markers:  # epochs are few: a dot each, so one epoch still shows
            parts.extend(
                f'<circle cx="{cx}" cy="{cy}" r="2.5" fill="{colour}"/>'
                for cx, cy in (at(x, y).split(",") for x, y in values)
            )
        ly = top + 4 + 12 * i
        legend.append(
            f'<g class="legend"><line x1="{width - 110}" y1="{ly}" x2="{width - 96}" y2="{ly}" '
            f'stroke="{colour}" stroke-width="2"/><text x="{width - 92}" y="{ly + 3}">'
            f"{html.escape(name)}</text></g>"
        )
    parts.extend(legend)
    parts.append("</svg>")
    return "".join(parts)


def split_points(points) -> tuple[dict, dict]:
    """Epoch points and batch points (contract C4: an epoch-end report carries ``epoch``; one report is the
    values sharing a pod, step and time). Returns ({pod: [{metric: value}]}, {pod: {metric: [(step, value)]}})."""
    reports: dict[tuple, dict[str, float]] = {}
    for point in points:
        reports.setdefault((point.pod, point.step, point.time), {})[point.name] = point.value
    epochs: dict[str, list[dict[str, float]]] = {}
    batches: dict[str, dict[str, list[tuple[int, float]]]] = {}
    for (pod, step, _time), values in sorted(reports.items(), key=lambda kv: (kv[0][0], kv[0][2], kv[0][1])):
        if "epoch" in values:
            epochs.setdefault(pod, []).append(values)
        else:
            for name, value in values.items():
                batches.setdefault(pod, {}).setdefault(name, []).append((step, value))
    return epochs, batches


def epoch_charts(reports: list[dict[str, float]], width: int = 420, height: int = 180) -> dict[str, str]:
    """One chart per metric against epoch, its validation twin on the same axes: {"loss": svg, ...}."""
    groups: dict[str, dict[str, list[tuple[float, float]]]] = {}
    for values in reports:
        for name, value in values.items():
            if name == "epoch":
                continue
            base = name[4:] if name.startswith("val_") else name
            groups.setdefault(base, {}).setdefault(name, []).append((values["epoch"], value))
    order = sorted(groups, key=lambda g: (g != "loss", g))
    return {
        g: curve_svg(
            dict(sorted(groups[g].items(), key=lambda kv: kv[0].startswith("val_"))),
            width,
            height,
            x_label="epoch",
            y_label=g,
            markers=True,
        )
        for g in order
    }


def _short(pod: str) -> str:
    return pod.rsplit("-", 2)[-2] + "-" + pod.rsplit("-", 1)[-1]


class JobMonitor(w.VBox):
    def __init__(self, job, refresh: float = 1.0, tail: int = 200):
        self.job = job
        self.tail = tail
        self.header = w.HTML()
        self.pods = w.HTML()
        self.pod = w.Dropdown(description="pod", layout=w.Layout(width="420px"))
        # PAI's Logview shows a pod's StdOut and StdErr apart; "both" interleaves them as they came
        self.stream = w.ToggleButtons(
            options=["both", "stdout", "stderr"], value="both", style={"button_width": "70px"}
        )
        self.log_view = w.Textarea(layout=w.Layout(width="100%", height="220px"), disabled=True)
        self.epochs = w.HTML()  # epoch metrics: train and validation per metric, against epoch
        self.metric = w.Dropdown(description="per batch", layout=w.Layout(width="260px"))
        self.chart = w.HTML()  # batch points of one metric against step, one thin line per pod
        self.stop_button = w.Button(description="Stop", button_style="danger", icon="stop")
        self.stop_button.on_click(self._stop)
        self.pod.observe(lambda _: self._show_logs(), names="value")
        self.stream.observe(lambda _: self._show_logs(), names="value")
        self.metric.observe(lambda _: self._show_chart(), names="value")
        self._points = []
        self._batches: dict = {}
        super().__init__(
            [
                self.header,
                self.pods,
                w.HBox([self.pod, self.stream, self.stop_button]),
                self.log_view,
                self.epochs,
                self.metric,
                self.chart,
            ]
        )
        self.update()
        self._thread = None
        if refresh and self.job.detail.state not in TERMINAL:
            self._thread = threading.Thread(target=self._loop, args=(refresh,), daemon=True)
            self._thread.start()

    def _loop(self, every: float) -> None:
        while True:
            time.sleep(every)
            try:
                self.update()
            except Exception as exc:  # noqa: BLE001 - the server went away: say so once and stop refreshing
                self.header.value += f"<br><i>refresh stopped: {html.escape(str(exc))}</i>"
                return
            if self.job.detail.state in TERMINAL:
                return

    def update(self) -> None:
        d = self.job.refresh()
        link = ""
        try:
            info = self.job.workspace.jobs.cluster()
            if info.dashboard_link:
                link = f' · <a href="{html.escape(info.dashboard_link)}" target="_blank">Dask dashboard</a>'
        except Exception:  # noqa: BLE001, S110
            pass
        self.header.value = (
            f"<b>{html.escape(d.id)}</b> {html.escape(d.name)} · {_badge(d.state)} · "
            f"<code>{html.escape(d.progress)}</code>{link}"
            + (f"<br><i>{html.escape(d.reason)}</i>" if d.reason else "")
        )
        rows = "".join(
            f"<tr><td>{html.escape(p.name)}</td><td>{_badge(p.state)}</td><td>{html.escape(p.host)}"
            f"{':' + str(p.port) if p.port else ''}</td><td>{p.pid or ''}</td>"
            f"<td>{','.join(map(str, p.gpus))}</td>"
            f"<td>{'' if p.exit_code is None else p.exit_code}</td></tr>"
            for p in d.pods
        )
        self.pods.value = (
            "<table><tr><th>pod</th><th>state</th><th>address</th><th>pid</th><th>GPUs</th>"
            f"<th>exit</th></tr>{rows}</table>"
        )
        names = [p.name for p in d.pods]
        if list(self.pod.options) != names:
            self.pod.options = names
        if self.pod.value is None and names:
            self.pod.value = names[0]
        self.stop_button.disabled = d.state not in ("Creating", "Queuing", "Running")
        self._show_logs()
        self._points = self.job.metric_points()
        epochs, self._batches = split_points(self._points)
        # every rank reports the same epoch logs under a strategy: show the chief's (else the first rank's)
        chief = next((p.name for p in d.pods if p.name in epochs and p.role in ("chief", "master")), None)
        shown = chief or next((p.name for p in d.pods if p.name in epochs), None) or next(iter(epochs), None)
        charts = epoch_charts(epochs[shown]) if shown else {}
        self.epochs.value = (
            ""
            if not charts
            else f"<div>epoch metrics of {html.escape(_short(shown))}</div>"
            "<div style='display:flex;flex-wrap:wrap;gap:8px'>" + "".join(charts.values()) + "</div>"
        )
        metric_names = sorted({name for series in self._batches.values() for name in series})
        if list(self.metric.options) != metric_names:
            current = self.metric.value
            self.metric.options = metric_names
            if current in metric_names:
                self.metric.value = current
            elif metric_names:
                self.metric.value = "loss" if "loss" in metric_names else metric_names[0]
        self.metric.layout.display = None if metric_names else "none"
        self._show_chart()

    def _show_logs(self) -> None:
        if self.pod.value:
            stream = None if self.stream.value == "both" else self.stream.value
            lines = self.job.log_lines(self.pod.value, max_events_num=self.tail, stream=stream)
            self.log_view.value = "\n".join(x.line for x in lines)

    def _show_chart(self) -> None:
        name = self.metric.value
        series = {_short(pod): values[name] for pod, values in sorted(self._batches.items()) if name in values}
        self.chart.value = (
            curve_svg(series, x_label="step", y_label=name or "", stroke=1) if series or not self._points else ""
        )

    def _stop(self, _button=None) -> None:
        self.stop_button.disabled = True
        self.job.stop()
        self.update()
