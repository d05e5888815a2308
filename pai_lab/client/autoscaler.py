"""``svc.autoscale(...)`` and ``svc.autoscaler``: a service's autoscaler from a notebook.

svc.autoscale(min=1, max=4, qps=50)              # EAS's rule: ceil(current x qps / 50), 10% tolerance
svc.autoscale(min=1, max=4, cpu=80, scale_down_window=60)
svc.autoscaler                                   # policy, current and target instances, scale events
svc.autoscaler.remove()                          # the service keeps the instances it has
"""

from __future__ import annotations

import html
from typing import TYPE_CHECKING

from pai_lab.errors import BadInput, NotFound
from pai_lab.serving.schemas import Autoscaler

if TYPE_CHECKING:
    from pai_lab.client.services import Service


def policy_body(
    min: int,  # EAS key names
    max: int,
    qps: float | None = None,
    cpu: float | None = None,
    scale_up_window: int | None = None,
    scale_down_window: int | None = None,
) -> dict:
    """The API's body (EAS's shape) from keyword arguments."""
    strategies = [{"metricName": m, "threshold": t} for m, t in (("qps", qps), ("cpu", cpu)) if t is not None]
    if not strategies:
        raise BadInput("give qps= and/or cpu= (the per-instance value to keep the service at)", "scaleStrategies")
    body: dict = {"min": min, "max": max, "scaleStrategies": strategies}
    behavior = {}
    if scale_up_window is not None:
        behavior["scaleUp"] = {"stabilizationWindowSeconds": scale_up_window}
    if scale_down_window is not None:
        behavior["scaleDown"] = {"stabilizationWindowSeconds": scale_down_window}
    if behavior:
        body["behavior"] = behavior
    return body


class ServiceAutoscaler:
    """A service's autoscaler as last read: ``.info`` (the API's shape), ``refresh()``, ``remove()``."""

    def __init__(self, service: Service, info: Autoscaler):
        self._service = service
        self.info = info

    @classmethod
    def read(cls, service: Service) -> ServiceAutoscaler | None:
        try:
            data = service.workspace._get(f"/services/{service.name}/autoscaler")
        except NotFound as exc:
            if exc.field == "autoscaler":
                return None
            raise
        return cls(service, Autoscaler.model_validate(data))

    @classmethod
    def put(cls, service: Service, body: dict) -> ServiceAutoscaler:
        return cls(
            service, Autoscaler.model_validate(service.workspace._put(f"/services/{service.name}/autoscaler", body))
        )

    def refresh(self) -> Autoscaler:
        self.info = Autoscaler.model_validate(
            self._service.workspace._get(f"/services/{self._service.name}/autoscaler")
        )
        return self.info

    def remove(self) -> None:
        self._service.workspace._delete(f"/services/{self._service.name}/autoscaler")

    @property
    def strategies(self) -> dict[str, float]:
        return {s.metricName: s.threshold for s in self.info.scaleStrategies}

    def windows(self) -> tuple[int, int]:
        """(scale-up, scale-down) stabilization windows in seconds."""
        behavior = self.info.behavior
        up = behavior.scaleUp.stabilizationWindowSeconds if behavior and behavior.scaleUp else 0
        down = behavior.scaleDown.stabilizationWindowSeconds if behavior and behavior.scaleDown else 300
        return up, down

    def summary(self) -> str:
        i = self.info
        rules = ", ".join(f"{m} {t:g}{'%' if m == 'cpu' else ''}" for m, t in self.strategies.items())
        return f"{i.min}-{i.max} instances by {rules}; {i.ready}/{i.instances} ready, target {i.target}"

    def __repr__(self) -> str:
        return f"<autoscaler of {self.info.service}: {self.summary()}>"

    def _repr_html_(self) -> str:
        i, e = self.info, html.escape
        up, down = self.windows()
        seen = ", ".join(f"{k} {v:g}{'%' if k == 'cpu' else ''}" for k, v in i.metrics.items()) or "not yet"
        facts = [
            ("instances", f"{i.ready}/{i.instances} ready, target {i.target} (min {i.min}, max {i.max})"),
            ("thresholds", e(", ".join(f"{m} {t:g} per instance" for m, t in self.strategies.items()))),
            ("windows", f"scale up after {up} s, down after {down} s"),
            ("last seen", e(seen)),
        ]
        table = "".join(
            f"<tr><th style='text-align:left'>{k}</th><td style='text-align:left'>{v}</td></tr>" for k, v in facts
        )
        events = "".join(
            f"<tr><td>{e(ev.at.strftime('%Y-%m-%d %H:%M:%S'))}</td><td>{e(ev.kind)}</td><td>{e(ev.message)}</td></tr>"
            for ev in i.events[:10]
        )
        return (
            f"<div><b>autoscaler of {e(i.service)}</b><table>{table}</table>"
            + (f"<table><tr><th>at</th><th>event</th><th>why</th></tr>{events}</table>" if events else "")
            + "</div>"
        )
