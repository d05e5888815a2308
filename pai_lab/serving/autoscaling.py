"""Autoscaling policies (`eascmd autoscale`): their records, their checks, the scaling rule and
the scale events that say why a service changed size.

Plain functions over a store session, no HTTP. The loop that applies the rule to live metrics is
:mod:`pai_lab.serving.autoscaler`; a scale it decides goes through the same ``modify_service`` as
``eascmd modify -Dmetadata.instance=N``, as the member who set the policy.

The rule is EAS's: ``desired = ceil(current x metric / threshold)`` per strategy, the largest of
them, no change while ``metric / threshold`` is within 10% of 1, bounded by ``min``/``max`` and the
server's instance limit. As Kubernetes' HPA does, a scale up happens once every recommendation of
the last ``scaleUp`` window asks for more (the smallest of them is taken), a scale down once every
recommendation of the last ``scaleDown`` window asks for less (the largest is taken).
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from pai_lab.errors import BadInput, NotFound
from pai_lab.serving.records import check_role, service_row, version_row
from pai_lab.serving.schemas import SCALE_METRICS, Autoscaler, AutoscalerSpec, ScaleEvent
from pai_lab.serving.tables import ServiceAutoscalerRow, ServiceEventRow, ServiceRow
from pai_lab.store import after_commit, utcnow

TOLERANCE = 0.1  # metric/threshold within 10% of 1: no change (threshold 10 qps scales out above 11)
DEFAULT_UP_WINDOW = 0
DEFAULT_DOWN_WINDOW = 300
MAX_WINDOW = 3600
MAX_THRESHOLD = 1_000_000
EVENTS_KEPT = 50  # per service; older ones are pruned
EVENTS_SHOWN = 20


# --------------------------------------------------------------------------- the policy


def check_policy(spec: AutoscalerSpec, limit: int) -> None:
    """The policy's rules, each refusal naming its field and the fix."""
    if spec.min < 1:
        raise BadInput(f"min={spec.min}: a service keeps at least 1 instance; give min >= 1", "min")
    if spec.max <= spec.min:
        raise BadInput(f"max={spec.max} must be more than min={spec.min}; give max >= {spec.min + 1}", "max")
    if spec.max > limit:
        raise BadInput(
            f"max={spec.max} is more than this server allows ({limit} instances per service; an operator "
            "raises it with PaiLabApp.max_service_instances)",
            "max",
        )
    if not spec.scaleStrategies:
        raise BadInput("give at least one strategy: qps and/or cpu with a threshold", "scaleStrategies")
    seen: set[str] = set()
    for i, strategy in enumerate(spec.scaleStrategies):
        where = f"scaleStrategies.{i}"
        if strategy.metricName not in SCALE_METRICS:
            raise BadInput(
                f"{where}.metricName: unknown metric {strategy.metricName!r}; use one of {', '.join(SCALE_METRICS)}",
                f"{where}.metricName",
            )
        if strategy.metricName in seen:
            raise BadInput(
                f"{where}.metricName: {strategy.metricName} is given twice; give it once", f"{where}.metricName"
            )
        seen.add(strategy.metricName)
        if not 0 < strategy.threshold <= MAX_THRESHOLD:
            raise BadInput(
                f"{where}.threshold={strategy.threshold:g}: give a number above 0 (and at most {MAX_THRESHOLD:,})",
                f"{where}.threshold",
            )
    behavior = spec.behavior
    for key in ("scaleUp", "scaleDown"):
        window = getattr(behavior, key, None) if behavior else None
        if window is not None and not 0 <= window.stabilizationWindowSeconds <= MAX_WINDOW:
            raise BadInput(
                f"behavior.{key}.stabilizationWindowSeconds={window.stabilizationWindowSeconds}: give 0 to "
                f"{MAX_WINDOW} seconds",
                f"behavior.{key}.stabilizationWindowSeconds",
            )


def _service(session: Session, user: str, workspace: str, name: str, action: str) -> ServiceRow:
    access = check_role(session, user, workspace, action, name)
    return service_row(session, access.workspace_id, name)


def instances_of(session: Session, row: ServiceRow) -> int:
    return int((version_row(session, row).config.get("metadata") or {}).get("instance") or 0)


def set_policy(
    session: Session, user: str, workspace: str, name: str, spec: AutoscalerSpec, *, limit: int, started
) -> None:
    """`eascmd autoscale NAME -Dmin=.. -Dmax=.. -Dstrategies.qps=..`: set (or replace) the policy.
    ``started`` runs after the commit (the loop starts watching)."""
    row = _service(session, user, workspace, name, "service.manage")
    check_policy(spec, limit)
    policy = session.get(ServiceAutoscalerRow, row.id)
    now = utcnow()
    if policy is None:
        policy = ServiceAutoscalerRow(service_id=row.id, workspace_id=row.workspace_id, created_at=now)
        session.add(policy)
    behavior = spec.behavior
    policy.min_instances, policy.max_instances = spec.min, spec.max
    policy.strategies = {s.metricName: float(s.threshold) for s in spec.scaleStrategies}
    up = behavior.scaleUp if behavior else None
    down = behavior.scaleDown if behavior else None
    policy.scale_up_window = up.stabilizationWindowSeconds if up else DEFAULT_UP_WINDOW
    policy.scale_down_window = down.stabilizationWindowSeconds if down else DEFAULT_DOWN_WINDOW
    policy.created_by, policy.updated_at = user, now  # it scales as the member who set it last
    session.flush()
    after_commit(session, started)


def delete_policy(session: Session, user: str, workspace: str, name: str) -> None:
    """`eascmd autoscale rm NAME`: the service keeps the instances it has."""
    row = _service(session, user, workspace, name, "service.manage")
    policy = session.get(ServiceAutoscalerRow, row.id)
    if policy is None:
        raise NotFound(_none_message(name), "autoscaler")
    session.delete(policy)
    session.flush()


def _none_message(name: str) -> str:
    return (
        f"service {name!r} has no autoscaler; set one with "
        f"`pai eascmd autoscale {name} -Dmin=1 -Dmax=4 -Dstrategies.qps=50`"
    )


def get_policy(session: Session, user: str, workspace: str, name: str, live: dict, ready: int) -> Autoscaler:
    """`eascmd autoscale desc NAME`: the policy, what the loop last saw (``live``) and the events."""
    row = _service(session, user, workspace, name, "service.read")
    policy = session.get(ServiceAutoscalerRow, row.id)
    if policy is None:
        raise NotFound(_none_message(name), "autoscaler")
    events = session.scalars(
        select(ServiceEventRow)
        .where(ServiceEventRow.service_id == row.id)
        .order_by(ServiceEventRow.id.desc())
        .limit(EVENTS_SHOWN)
    ).all()
    instances = instances_of(session, row)
    return Autoscaler(
        **as_spec(policy),
        service=row.name,
        instances=instances,
        ready=ready,
        target=live.get("target", instances),
        metrics=live.get("metrics", {}),
        created_by=policy.created_by,
        updated_at=policy.updated_at,
        events=[
            ScaleEvent(
                at=e.at, kind=e.kind, from_instances=e.from_instances, to_instances=e.to_instances, message=e.message
            )
            for e in events
        ],
    )


def as_spec(policy: ServiceAutoscalerRow) -> dict:
    """The policy in the API's shape."""
    return {
        "min": policy.min_instances,
        "max": policy.max_instances,
        "scaleStrategies": [{"metricName": m, "threshold": t} for m, t in policy.strategies.items()],
        "behavior": {
            "scaleUp": {"stabilizationWindowSeconds": policy.scale_up_window},
            "scaleDown": {"stabilizationWindowSeconds": policy.scale_down_window},
        },
    }


def record_event(
    session: Session, row: ServiceRow, kind: str, message: str, before: int | None = None, after: int | None = None
) -> None:
    session.add(
        ServiceEventRow(
            service_id=row.id,
            workspace_id=row.workspace_id,
            at=utcnow(),
            kind=kind,
            from_instances=before,
            to_instances=after,
            message=message,
        )
    )
    session.flush()
    keep = select(ServiceEventRow.id).where(ServiceEventRow.service_id == row.id).order_by(ServiceEventRow.id.desc())
    cutoff = session.scalar(keep.offset(EVENTS_KEPT - 1).limit(1))
    if cutoff is not None:
        session.execute(
            delete(ServiceEventRow).where(ServiceEventRow.service_id == row.id, ServiceEventRow.id < cutoff)
        )


# --------------------------------------------------------------------------- the rule


def recommend(current: int, ready: int, metrics: dict[str, float], strategies: dict[str, float]) -> tuple[int, str]:
    """Instances wanted for the per-instance ``metrics`` seen on ``ready`` instances of ``current``,
    before bounds and windows, and why (e.g. ``qps 38.2 per instance, threshold 10``)."""
    wanted, why = None, ""
    for metric, threshold in strategies.items():
        value = metrics.get(metric)
        if value is None:
            continue
        ratio = value / threshold
        base = ready or current
        count = base if abs(ratio - 1) <= TOLERANCE + 1e-9 else math.ceil(base * ratio - 1e-9)
        if wanted is None or count > wanted:
            unit = "%" if metric == "cpu" else ""
            wanted, why = count, f"{metric} {value:.1f}{unit} per instance, threshold {threshold:g}{unit}"
    if wanted is None:
        return current, "no metrics yet"
    if ready < current:  # instances still starting: never take them away on the others' numbers
        wanted = max(wanted, current)
    return wanted, why


def bounded(count: int, low: int, high: int) -> int:
    return max(low, min(high, count))


def stabilized(current: int, history: Iterable[tuple[float, int]], now: float, up: float, down: float) -> int:
    """The instance count to set now, from the recommendations ``(time, count)`` made so far."""
    history = list(history)
    ups = [c for t, c in history if t >= now - up] or [current]
    downs = [c for t, c in history if t >= now - down] or [current]
    if min(ups) > current:
        return min(ups)
    if max(downs) < current:
        return max(downs)
    return current
