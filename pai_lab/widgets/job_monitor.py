"""``job.monitor()``: a live panel for one training job.

State per rank, a log tail per pod, metric curves, a stop button and the Dask dashboard link,
refreshed from the control plane until the job ends.
"""

from __future__ import annotations

import html
import threading
import time

import ipywidgets as w

TERMINAL = ("Succeeded", "Failed", "Stopped")
COLOURS = {"Succeeded": "#2e7d32", "Failed": "#c62828", "Stopped": "#6d4c41", "Running": "#1565c0",
           "Queuing": "#ef6c00", "Creating": "#757575", "Stopping": "#6d4c41", "Pending": "#757575"}
PALETTE = ["#1565c0", "#c62828", "#2e7d32", "#6a1b9a", "#ef6c00", "#00838f"]


def _badge(state: str) -> str:
    return f'<span style="color:{COLOURS.get(state, "#000")};font-weight:600">{html.escape(state)}</span>'


def curve_svg(series: dict[str, list[tuple[int, float]]], width: int = 420, height: int = 160) -> str:
    """An SVG line chart, one line per series (pod); no plotting library needed."""
    points = [p for values in series.values() for p in values]
    if not points:
        return f'<svg width="{width}" height="{height}"><text x="10" y="20">no points yet</text></svg>'
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    x0, x1, y0, y1 = min(xs), max(xs), min(ys), max(ys)
    sx = (width - 50) / ((x1 - x0) or 1)
    sy = (height - 30) / ((y1 - y0) or 1)
    parts = [f'<svg width="{width}" height="{height}" style="font:10px sans-serif">',
             f'<text x="2" y="12">{y1:.4g}</text><text x="2" y="{height - 18}">{y0:.4g}</text>',
             f'<text x="40" y="{height - 4}">step {x0}</text><text x="{width - 60}" y="{height - 4}">{x1}</text>']
    for i, (name, values) in enumerate(sorted(series.items())):
        coords = " ".join(f"{40 + (x - x0) * sx:.1f},{8 + (y1 - y) * sy:.1f}" for x, y in sorted(values))
        colour = PALETTE[i % len(PALETTE)]
        parts.append(f'<polyline fill="none" stroke="{colour}" stroke-width="1.5" points="{coords}">'
                     f"<title>{html.escape(name)}</title></polyline>")
    parts.append("</svg>")
    return "".join(parts)


class JobMonitor(w.VBox):
    def __init__(self, job, refresh: float = 1.0, tail: int = 200):
        self.job = job
        self.tail = tail
        self.header = w.HTML()
        self.pods = w.HTML()
        self.pod = w.Dropdown(description="pod", layout=w.Layout(width="420px"))
        self.log_view = w.Textarea(layout=w.Layout(width="100%", height="220px"), disabled=True)
        self.metric = w.Dropdown(description="metric", layout=w.Layout(width="260px"))
        self.chart = w.HTML()
        self.stop_button = w.Button(description="Stop", button_style="danger", icon="stop")
        self.stop_button.on_click(self._stop)
        self.pod.observe(lambda _: self._show_logs(), names="value")
        self.metric.observe(lambda _: self._show_chart(), names="value")
        self._points = []
        super().__init__([self.header, self.pods, w.HBox([self.pod, self.stop_button]), self.log_view,
                          self.metric, self.chart])
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
            info = self.job._jobs.cluster()
            if info.dashboard_link:
                link = f' · <a href="{html.escape(info.dashboard_link)}" target="_blank">Dask dashboard</a>'
        except Exception:  # noqa: BLE001, S110
            pass
        self.header.value = (f"<b>{html.escape(d.id)}</b> {html.escape(d.name)} · {_badge(d.state)} · "
                             f"<code>{html.escape(d.progress)}</code>{link}"
                             + (f"<br><i>{html.escape(d.reason)}</i>" if d.reason else ""))
        rows = "".join(f"<tr><td>{html.escape(p.name)}</td><td>{_badge(p.state)}</td><td>{html.escape(p.host)}"
                       f"{':' + str(p.port) if p.port else ''}</td><td>{p.pid or ''}</td>"
                       f"<td>{','.join(map(str, p.gpus))}</td><td>{'' if p.exit_code is None else p.exit_code}</td></tr>"
                       for p in d.pods)
        self.pods.value = ("<table><tr><th>pod</th><th>state</th><th>address</th><th>pid</th><th>GPUs</th>"
                           f"<th>exit</th></tr>{rows}</table>")
        names = [p.name for p in d.pods]
        if list(self.pod.options) != names:
            self.pod.options = names
        if self.pod.value is None and names:
            self.pod.value = names[0]
        self.stop_button.disabled = d.state not in ("Creating", "Queuing", "Running")
        self._show_logs()
        self._points = self.job.metric_points()
        metric_names = sorted({p.name for p in self._points})
        if list(self.metric.options) != metric_names:
            current = self.metric.value
            self.metric.options = metric_names
            if current in metric_names:
                self.metric.value = current
            elif metric_names:
                self.metric.value = "loss" if "loss" in metric_names else metric_names[0]
        self._show_chart()

    def _show_logs(self) -> None:
        if self.pod.value:
            lines = self.job.log_lines(self.pod.value, max_events_num=self.tail)
            self.log_view.value = "\n".join(x.line for x in lines)

    def _show_chart(self) -> None:
        series: dict[str, list[tuple[int, float]]] = {}
        for point in self._points:
            if point.name == self.metric.value:
                series.setdefault(point.pod.rsplit("-", 2)[-2] + "-" + point.pod.rsplit("-", 1)[-1], []).append(
                    (point.step, point.value))
        self.chart.value = curve_svg(series)

    def _stop(self, _button=None) -> None:
        self.stop_button.disabled = True
        self.job.stop()
        self.update()
