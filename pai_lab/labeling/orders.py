"""The order of the packages nobody has started: most uncertain suggestions first, random, or (for
image tasks) typical or cluster-margin, which compare the items' images
(:mod:`pai_lab.labeling.ordering`, over :mod:`pai_lab.labeling.embeddings`).

A request orders in three steps, so no store transaction is held while images are read: the item list
is read (a short transaction), the task's embedding is built from it outside any transaction (once per
task, in the background; a request that waits past its deadline is told to ask again), and the order is
written in a short transaction of its own.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any, cast

import numpy as np
from sqlalchemy import Table, bindparam, select, update
from sqlalchemy.orm import Session

from pai_lab.errors import BadInput, Conflict
from pai_lab.labeling import flow as fl
from pai_lab.labeling import schemas as sc
from pai_lab.labeling import suggestions as sg
from pai_lab.labeling.embeddings import embeddings
from pai_lab.labeling.intake import sample
from pai_lab.labeling.ordering import rank_rows
from pai_lab.labeling.packages import _changed
from pai_lab.labeling.tables import ItemRow, PackageEventRow, PackageRow, TaskRow
from pai_lab.labeling.tasks import manage
from pai_lab.store import utcnow

WAIT_SECONDS = 20.0  # how long a request waits for a task's embedding before it is told to ask again


def order_task(
    platform: Any,
    user: str,
    ws: str,
    ref: str,
    by: str,
    seed: int | None = None,
    *,
    transaction: Callable[[], AbstractContextManager[Session]] | None = None,
    wait: float | None = None,
) -> sc.OrderResult:
    """:func:`order` as a request runs it: for ``typical`` and ``cluster_margin``, the task's embedding is
    built first, outside any transaction, waiting at most ``wait`` seconds (default: the server's
    ``order_embedding_wait``, else :data:`WAIT_SECONDS`); past that, :class:`~pai_lab.errors.Unavailable`
    (code ``computing``, with a ``retry_after``) while the build goes on. ``transaction``: the one the
    order is written in (default: a store transaction of its own)."""
    embedding = None
    if by in sg.BY_CONTENT:
        with platform.store.transaction() as s:  # only reads: the checks, then the task's item list
            _checked(s, user, ws, ref, by, seed)
            listing = embeddings(platform).listing(s, user, ws, ref)
        if wait is None:
            wait = float((getattr(platform, "settings", None) or {}).get("order_embedding_wait", WAIT_SECONDS))
        embedding = embeddings(platform).of_listing(listing, wait)
    with (transaction or platform.store.transaction)() as s:
        return order(s, user, ws, ref, by, seed, embedding=embedding)


def _checked(s: Session, user: str, ws: str, ref: str, by: str, seed: int | None) -> TaskRow:
    """The task, once the caller may order it and ``by`` and ``seed`` fit it; else the 4xx that says why."""
    _, task = manage(s, user, ws, ref)
    if by not in sg.ORDERS:
        raise BadInput(f"unknown order {by!r}; orders are: {', '.join(sg.ORDERS)}", "by")
    if task.package_by:
        raise BadInput(
            f"task {task.name!r} is packaged by {task.package_by!r}; its packages keep their field "
            "values and cannot be reordered",
            "by",
        )
    if by in sg.BY_CONTENT and seed is not None and seed < 0:
        raise BadInput(f"seed: order {by!r} takes a seed of 0 or more, not {seed}", "seed")
    return task


def order(
    s: Session,
    user: str,
    ws: str,
    ref: str,
    by: str,
    seed: int | None = None,
    *,
    embedding: dict[int, np.ndarray] | None = None,
) -> sc.OrderResult:
    """Repack the items of the packages nobody has claimed or answered, so the next packages
    claimed hold the most uncertain suggestions first (unscored items last), or a random order,
    or (with the task's ``embedding``, {seq: row}; see :func:`order_task`) a typical or a
    cluster-margin next package (:mod:`pai_lab.labeling.ordering`).

    Those packages keep their numbers and sizes; only which items they hold changes."""
    task = _checked(s, user, ws, ref, by, seed)
    if by in sg.BY_CONTENT and embedding is None:
        raise BadInput(f"order {by!r} reads the items' images; ask the server for it", "by")
    claimed = select(PackageEventRow.package_id).where(PackageEventRow.task_id == task.id)
    answered = select(ItemRow.package_id).where(
        ItemRow.task_id == task.id, (ItemRow.label.is_not(None)) | ItemRow.skipped.is_not(None)
    )
    pkgs = s.scalars(
        select(PackageRow)
        .where(
            PackageRow.task_id == task.id,
            PackageRow.state == fl.POOL["label"],
            PackageRow.rework == 0,
            PackageRow.id.not_in(claimed),
            PackageRow.id.not_in(answered),
        )
        .order_by(PackageRow.number)
    ).all()
    if not pkgs:
        return sc.OrderResult(by=by, packages=0, items=0, scored=0)
    # hold them: a claim racing this waits for it, or this fails and changes nothing
    held = _changed(
        s.execute(
            update(PackageRow)
            .where(
                PackageRow.id.in_([p.id for p in pkgs]),
                PackageRow.state == fl.POOL["label"],
                PackageRow.holder.is_(None),
            )
            .values(updated_at=utcnow())
        )
    )
    if held != len(pkgs):
        raise Conflict("a package was claimed while the task was being ordered; order it again", "by")
    rows = s.execute(
        select(ItemRow.id, ItemRow.seq, ItemRow.prelabel_score, ItemRow.prelabel_scores).where(
            ItemRow.package_id.in_([p.id for p in pkgs])
        )
    ).all()
    if by in sg.BY_CONTENT:
        labelled = s.scalars(select(ItemRow.seq).where(ItemRow.task_id == task.id, ItemRow.label.is_not(None))).all()
        ranked = rank_rows(by, list(rows), embedding or {}, list(labelled), pkgs[0].size, seed or 0)
        scored = sum(r.prelabel_score is not None or r.prelabel_scores is not None for r in rows)
    elif by == "random":
        ranked = sorted(rows, key=lambda r: r.seq)
        random.Random(seed).shuffle(ranked)
        scored = sum(r.prelabel_score is not None or r.prelabel_scores is not None for r in rows)
    else:
        keyed = [
            (sg.uncertainty(by, r.prelabel_score, json.loads(r.prelabel_scores) if r.prelabel_scores else None), r)
            for r in rows
        ]
        scored = sum(u is not None for u, _ in keyed)
        # most uncertain first; unscored last; ties keep the items' order
        ranked = [r for _, r in sorted(keyed, key=lambda k: (k[0] is None, -(k[0] or 0.0), k[1].seq))]
    moves: list[dict] = []
    start = 0
    for pkg in pkgs:
        for r in ranked[start : start + pkg.size]:
            moves.append({"_id": r.id, "_pkg": pkg.id})
        start += pkg.size
    items = cast(Table, ItemRow.__table__)
    s.connection().execute(
        update(items).where(items.c.id == bindparam("_id")).values(package_id=bindparam("_pkg"), sampled=True), moves
    )
    if task.check_ratio < 1 and "check" in fl.stages(task.flow):
        sample(s, task, list(pkgs))
    s.expire_all()
    return sc.OrderResult(by=by, packages=len(pkgs), items=len(rows), scored=scored)
