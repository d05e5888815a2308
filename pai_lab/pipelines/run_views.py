"""What a member reads of a run (its summary, its steps, its outputs), read with no more than it needs.

A wide run is read often (every long poll that sees its state change, the run panel's refresh) and its
manifest is large (every step carries its operator, a FunctionOperator's pickle included: 200 steps are
about 250 kB). So a run's detail reads its steps' columns alone (never the inputs each attempt ran
with), and the one part of the manifest it needs, the pipeline's declared outputs, is kept per run once
read: a run's manifest never changes after it is created.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from pai_lab.pipelines import manifest as manifests
from pai_lab.pipelines.schemas import PipelineNode, PipelineOutput, PipelineRunDetail, PipelineRunInfo
from pai_lab.pipelines.status import PipelineRunStatus as S
from pai_lab.pipelines.tables import NodeRow, RunRow

DECLARED_KEPT = 1024  # runs whose declared outputs are kept in memory (a few hundred bytes each)
_DECLARED: OrderedDict[str, dict] = OrderedDict()
_DECLARED_LOCK = threading.Lock()

# a step's columns a run's detail shows (its inputs, its cache key and its folder stay in the store)
NODE_COLUMNS = (
    NodeRow.name,
    NodeRow.node_id,
    NodeRow.identifier,
    NodeRow.depends,
    NodeRow.status,
    NodeRow.reason,
    NodeRow.cached,
    NodeRow.attempt,
    NodeRow.started_at,
    NodeRow.finished_at,
    NodeRow.outputs,
)


def remember_declared(run_id: str, manifest: Mapping[str, Any]) -> dict:
    """The run's declared outputs (its manifest's ``spec.outputs``), kept for the reads that follow. An
    output a step that runs a pipeline makes is read from the sub-step that makes it."""
    from pai_lab.pipelines.nesting import expand

    spec = manifest.get("spec") or {}
    declared = dict((expand(dict(spec)) if isinstance(spec, dict) else {}).get("outputs") or {})
    with _DECLARED_LOCK:
        _DECLARED[run_id] = declared
        _DECLARED.move_to_end(run_id)
        while len(_DECLARED) > DECLARED_KEPT:
            _DECLARED.popitem(last=False)
    return declared


def declared_outputs(session: Session, run_id: str) -> dict:
    """The run's declared outputs: kept ones, else read from its manifest (once)."""
    with _DECLARED_LOCK:
        found = _DECLARED.get(run_id)
    if found is not None:
        return found
    manifest = session.scalar(select(RunRow.manifest).where(RunRow.id == run_id)) or {}
    return remember_declared(run_id, manifest)


def node_views(session: Session, run_id: str) -> list:
    """The run's steps in their order, as rows of :data:`NODE_COLUMNS` (read by attribute)."""
    return list(session.execute(select(*NODE_COLUMNS).where(NodeRow.run_id == run_id).order_by(NodeRow.id)))


def progress(session: Session, run_ids: list[str]) -> dict[str, tuple[int, int]]:
    """Each run's (steps, steps ended), in one query."""
    if not run_ids:
        return {}
    ended = func.sum(case((NodeRow.status.in_(S.FINISHED), 1), else_=0))
    rows = session.execute(
        select(NodeRow.run_id, func.count(), ended).where(NodeRow.run_id.in_(run_ids)).group_by(NodeRow.run_id)
    )
    return {run_id: (int(total), int(done or 0)) for run_id, total, done in rows}


def summary(row: RunRow, counts: tuple[int, int] = (0, 0)) -> PipelineRunInfo:
    return PipelineRunInfo(
        id=row.id,
        name=row.name,
        pipeline=row.pipeline,
        status=row.status,
        reason=row.reason,
        created_by=row.created_by,
        created_at=row.created_at,
        started_at=row.started_at,
        finished_at=row.finished_at,
        attempt=row.attempt,
        cache=row.cache,
        steps_total=counts[0],
        steps_done=counts[1],
    )


def run_outputs(run_id: str, declared: Mapping[str, Any], outputs: Mapping[str, dict]) -> list[PipelineOutput]:
    """The pipeline's ``declared`` outputs (every step's outputs when it declares none), from each step's
    ``outputs`` (step name -> its outputs, in the run's order)."""
    found: list[PipelineOutput] = []
    named = [(kind, o) for kind in ("parameters", "artifacts") for o in declared.get(kind) or []]
    for kind, out in named:
        bound = manifests._binding(out, f"outputs.{out.get('name')}")
        made = (outputs.get(bound.step or "") or {}).get(kind, {})
        if bound.step not in outputs or bound.name not in made:
            continue
        found.append(
            PipelineOutput(
                name=out["name"],
                kind=kind,
                producer=bound.step,
                run_id=run_id,
                value=made[bound.name],
                metadata=out.get("metadata") or {},
            )
        )
    if not named:
        for step, values in outputs.items():
            for kind in ("parameters", "artifacts"):
                for name, value in (values or {}).get(kind, {}).items():
                    found.append(PipelineOutput(name=name, kind=kind, producer=step, run_id=run_id, value=value))
    return found


def outputs_by_step(nodes: Iterable) -> dict[str, dict]:
    """Each step's outputs by its name, from rows that have ``name`` and ``outputs``."""
    return {n.name: n.outputs or {} for n in nodes}


def detail(session: Session, row: RunRow, nodes: list | None = None) -> PipelineRunDetail:
    """The run and its steps (``nodes``: its steps as just written, else read)."""
    nodes = node_views(session, row.id) if nodes is None else nodes
    done = sum(1 for n in nodes if n.status in S.FINISHED)
    return PipelineRunDetail(
        **summary(row, (len(nodes), done)).model_dump(),
        nodes=[
            PipelineNode(
                name=n.name,
                node_id=n.node_id,
                identifier=n.identifier,
                depends=n.depends,
                status=n.status,
                reason=n.reason,
                cached=n.cached,
                attempt=n.attempt,
                started_at=n.started_at,
                finished_at=n.finished_at,
                outputs=n.outputs or {},
            )
            for n in nodes
        ],
        outputs=run_outputs(row.id, declared_outputs(session, row.id), outputs_by_step(nodes)),
        arguments=row.arguments.get("inputs", {}),
    )
