"""A service in a notebook: state, instances, QPS and latency charts, the blue-green
traffic slider and a test-request form. ``svc.panel()`` shows it."""

from __future__ import annotations

import html
import json
import threading
import time

import ipywidgets as W


def chart(values: list[float], title: str, unit: str, colour: str, width: int = 220, height: int = 48) -> str:
    """A small SVG line chart of the last values, with its title, the last value and the top of
    its scale written on it (the panel redraws it at every refresh)."""
    top = max(values, default=0.0) or 1.0
    step = width / max(1, len(values) - 1)
    points = " ".join(f"{i * step:.1f},{height - 4 - v / top * (height - 16):.1f}" for i, v in enumerate(values))
    last = f"{values[-1]:.1f} {unit}" if values else "-"
    line = f"<polyline points='{points}' fill='none' stroke='{colour}' stroke-width='1.5'/>" if len(values) > 1 else ""
    return (
        f"<svg width='{width}' height='{height}' style='border:1px solid #ddd;margin-right:8px' "
        f"role='img' aria-label='{html.escape(title)}'>"
        f"<text x='3' y='11' font-size='10' fill='#555'>{html.escape(title)}: {html.escape(last)}</text>"
        f"<text x='{width - 3}' y='11' font-size='9' fill='#999' text-anchor='end'>max {top:.1f}</text>"
        f"{line}</svg>"
    )


class ServicePanel(W.VBox):
    def __init__(self, service, refresh_seconds: float = 2.0, history: int = 40):
        self.service = service
        self.history = history
        self.samples: list[tuple[float, float, float]] = []  # (time, requests, latency_ms_sum)
        self.qps: list[float] = []
        self.latency: list[float] = []
        self.header = W.HTML()
        self.instances = W.HTML()
        self.charts = W.HTML()
        self.traffic = W.IntSlider(
            description="new side %", min=0, max=100, continuous_update=False, layout=W.Layout(width="420px")
        )
        self.traffic_box = W.HBox([self.traffic])
        self.scale = W.BoundedIntText(description="instances", min=0, max=64, layout=W.Layout(width="180px"))
        self.scale_button = W.Button(description="Scale", icon="arrows-v")
        self.request = W.Textarea(
            placeholder='[[0.1, 0.2, 0.3, 0.4]]  or  {"images": [[...]]}', layout=W.Layout(width="100%", height="70px")
        )
        self.send = W.Button(description="Send test request", button_style="primary", icon="paper-plane")
        self.answer = W.HTML()
        self.scale_button.on_click(lambda _: self._scale())
        self.send.on_click(lambda _: self.try_request())
        self.traffic.observe(self._release, names="value")
        self._updating = False
        super().__init__(
            [
                self.header,
                self.instances,
                self.charts,
                self.traffic_box,
                W.HBox([self.scale, self.scale_button]),
                self.request,
                self.send,
                self.answer,
            ]
        )
        self.refresh()
        self._stop = threading.Event()
        if refresh_seconds:
            threading.Thread(target=self._loop, args=(refresh_seconds,), daemon=True).start()

    # ----------------------------------------------------------------- state

    def _child(self) -> str | None:
        """The blue-green partner whose share the slider sets (this service's own traffic entry)."""
        traffic = self.service.info.traffic or {}
        others = [n for n in traffic if n != self.service.name]
        return others[0] if others else None

    def refresh(self) -> None:
        info = self.service.refresh()
        colour = {"Running": "#2e7d32", "Failed": "#c62828", "Stopped": "#757575"}.get(info.state, "#f9a825")
        endpoint = html.escape(info.endpoint or info.service_path)
        self.header.value = (
            f"<b>{html.escape(info.name)}</b> <span style='color:{colour}'>"
            f"{html.escape(info.state)}</span> "
            f"&nbsp; {info.instances_ready}/{info.instances_total} ready &nbsp; version "
            f"{info.current_version}/{info.latest_version} &nbsp; <code>{endpoint}</code>"
        )
        scaler = self.service.autoscaler
        if scaler is not None:  # the policy and the instances it wants
            self.header.value += f" &nbsp; autoscaled: {html.escape(scaler.summary())}"
        rows = "".join(
            f"<tr><td>{html.escape(i.name)}</td><td>{html.escape(i.status)}</td><td>{html.escape(i.ready)}</td>"
            f"<td>{i.restarts}</td>"
            f"<td>{html.escape(json.dumps(i.last_state) if i.last_state else '')}</td></tr>"
            for i in self.service.instances()
        )
        self.instances.value = (
            "<table><tr><th>instance</th><th>status</th><th>ready</th><th>restarts</th>"
            f"<th>last state</th></tr>{rows}</table>"
        )
        stats = info.stats or {}
        now = time.time()
        self.samples.append((now, stats.get("requests", 0.0), stats.get("latency_ms_sum", 0.0)))
        if len(self.samples) >= 2:
            (t0, r0, l0), (t1, r1, l1) = self.samples[-2], self.samples[-1]
            done = max(0.0, r1 - r0)
            self.qps.append(done / max(t1 - t0, 1e-6))
            self.latency.append((l1 - l0) / done if done else 0.0)
            self.qps, self.latency = self.qps[-self.history :], self.latency[-self.history :]
        # the gateway's counters for this service (requests answered, summed latency), as rates
        # between two refreshes: requests per second and mean milliseconds per request
        self.charts.value = (
            f"<div style='display:flex'>{chart(self.qps, 'QPS', 'req/s', '#1565c0')}"
            f"{chart(self.latency, 'latency', 'ms', '#6a1b9a')}</div>"
        )
        child = self._child()
        self._updating = True
        try:
            self.traffic_box.layout.display = "" if child else "none"
            if child:
                self.traffic.description = f"{child} %"
                self.traffic.value = (info.traffic or {}).get(child, 0)
            self.scale.value = info.config.get("metadata", {}).get("instance", 0)
        finally:
            self._updating = False

    def _loop(self, seconds: float) -> None:
        while not self._stop.wait(seconds):
            try:
                self.refresh()
            except Exception:  # noqa: BLE001 - the server went away: stop polling quietly
                return

    def close(self) -> None:
        self._stop.set()
        super().close()

    # ----------------------------------------------------------------- actions

    def _release(self, change) -> None:
        child = self._child()
        if self._updating or not child:
            return
        self.service.workspace.services.get(child).release(int(change["new"]))
        self.refresh()

    def _scale(self) -> None:
        self.service.scale(int(self.scale.value))
        self.refresh()

    def try_request(self) -> None:
        try:
            data = json.loads(self.request.value or "null")
            result = self.service.predict(data)
            shown = (
                result.tolist()
                if hasattr(result, "tolist")
                else (
                    {k: v.tolist() for k, v in result.items()}
                    if isinstance(result, dict) and result and hasattr(next(iter(result.values())), "tolist")
                    else result
                )
            )
            self.answer.value = f"<pre>{html.escape(json.dumps(shown, indent=1, default=str)[:4000])}</pre>"
        except Exception as exc:  # noqa: BLE001 - show the service's own message in the panel
            self.answer.value = f"<pre style='color:#c62828'>{html.escape(str(exc))}</pre>"
