"""Items and their answers: reading a package's items, storing one answer (idempotent on its
client_id), an item's history, and attaching suggestions (pre-labels)."""

from __future__ import annotations

import json
from collections.abc import Callable
from contextlib import AbstractContextManager

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from pai_lab.errors import BadInput, Conflict, Forbidden, NotFound
from pai_lab.labeling import flow as fl
from pai_lab.labeling import schemas as sc
from pai_lab.labeling import suggestions as sg
from pai_lab.labeling.answers import Checker, dumps
from pai_lab.labeling.intake import normalize
from pai_lab.labeling.packages import held, package_row
from pai_lab.labeling.tables import AnswerRow, ItemRow, PackageRow, TaskRow
from pai_lab.labeling.tasks import find_task, manage, my_roles, progress, task_row
from pai_lab.labeling.templates import TemplateSpec
from pai_lab.store import utcnow
from pai_lab.workspaces import authorize


def package_items(s: Session, user: str, ws: str, ref: str, number: int) -> list[sc.TaskItem]:
    access = authorize(s, user, ws, "label.read")
    task = find_task(s, access.workspace_id, ref)
    pkg = package_row(s, task, number)
    if pkg.holder != user and not my_roles(task, user, access.roles):
        raise Forbidden(f"'{user}' is not on task {task.name!r}; its admins add people with `pai label people`", "task")
    rows = s.scalars(select(ItemRow).where(ItemRow.package_id == pkg.id).order_by(ItemRow.seq)).all()
    return [_item_schema(r, pkg.number) for r in rows]


def _item_schema(r: ItemRow, package: int) -> sc.TaskItem:
    load = lambda t: json.loads(t) if t is not None else None  # noqa: E731
    origins = {stage: o for stage, col in fl.ORIGIN_COLUMN.items() if (o := getattr(r, col)) is not None}
    return sc.TaskItem(
        seq=r.seq,
        package=package,
        data=json.loads(r.data),
        sampled=r.sampled,
        skipped=r.skipped,
        label=load(r.label),
        check=load(r.check),
        verify=load(r.verify),
        prelabel=load(r.prelabel),
        prelabel_source=r.prelabel_source,
        prelabel_score=r.prelabel_score,
        prelabel_scores=load(r.prelabel_scores),
        origins=origins,
        revision=r.revision,
    )


def list_items(s: Session, user: str, ws: str, ref: str, offset: int = 0, limit: int = 100) -> list[sc.TaskItem]:
    task = task_row(s, user, ws, ref)
    rows = s.execute(
        select(ItemRow, PackageRow.number)
        .join(PackageRow, PackageRow.id == ItemRow.package_id)
        .where(ItemRow.task_id == task.id)
        .order_by(ItemRow.seq)
        .offset(offset)
        .limit(limit)
    ).all()
    return [_item_schema(r, n) for r, n in rows]


def item_history(s: Session, user: str, ws: str, ref: str, seq: int) -> list[sc.AnswerHistory]:
    task = task_row(s, user, ws, ref)
    item = _item(s, task, seq)
    rows = s.scalars(select(AnswerRow).where(AnswerRow.item_id == item.id).order_by(AnswerRow.id)).all()
    return [
        sc.AnswerHistory(
            id=a.id,
            stage=a.stage,
            revision=a.revision,
            results=json.loads(a.results) if a.results is not None else None,
            skip_reason=a.skip_reason,
            author=a.author,
            client_id=a.client_id,
            created_at=a.created_at,
        )
        for a in rows
    ]


def _item(s: Session, task: TaskRow, seq: int) -> ItemRow:
    return _item_and_package(s, task, seq)[0]


def _item_and_package(s: Session, task: TaskRow, seq: int) -> tuple[ItemRow, PackageRow]:
    row = s.execute(
        select(ItemRow, PackageRow)
        .join(PackageRow, PackageRow.id == ItemRow.package_id)
        .where(ItemRow.task_id == task.id, ItemRow.seq == seq)
    ).first()
    if row is None:
        raise NotFound(f"task {task.name!r} has no item {seq} (items are 0..{task.total - 1})", "item")
    return row[0], row[1]


_CHECKERS: dict[tuple, Checker] = {}


def checker_for(task: TaskRow) -> Checker:
    """The task's template and labels are fixed when it is created: parse them once. (An id can
    come back after a delete, when a file is imported again; the creation time tells them apart.)"""
    key = (task.id, task.created_at)
    checker = _CHECKERS.get(key)
    if checker is None:
        if len(_CHECKERS) > 256:
            _CHECKERS.clear()
        checker = _CHECKERS[key] = Checker(TemplateSpec.model_validate(task.spec), [lab["name"] for lab in task.labels])
    return checker


def _ack(s: Session, task: TaskRow, a: AnswerRow, seq: int, duplicate: bool) -> sc.AnswerAck:
    s.flush()
    return sc.AnswerAck(
        id=a.id,
        item=seq,
        stage=a.stage,
        revision=a.revision,
        client_id=a.client_id,
        author=a.author,
        created_at=a.created_at,
        duplicate=duplicate,
        progress=progress(s, task),
    )


def submit_answer(s: Session, user: str, ws: str, ref: str, body: sc.AnswerSubmit) -> sc.AnswerAck:
    """Store one item's answer in one transaction; a retry with the same client_id stores nothing."""
    access = authorize(s, user, ws, "label.read")
    task = find_task(s, access.workspace_id, ref)
    if body.client_id:
        old = s.scalar(select(AnswerRow).where(AnswerRow.task_id == task.id, AnswerRow.client_id == body.client_id))
        if old is not None:
            seq = s.scalar(select(ItemRow.seq).where(ItemRow.id == old.item_id))
            if seq != body.item:
                raise Conflict(
                    f"client_id {body.client_id!r} was already used for item {seq}; use a new id per answer",
                    "client_id",
                )
            return _ack(s, task, old, seq, True)
    item, pkg = _item_and_package(s, task, body.item)
    task, pkg, stage = held(s, user, ws, ref, pkg.number, body.stage, task=task, pkg=pkg, access=access)
    s.refresh(item)  # as it is now that the package is held: an answer that raced this one has committed
    if stage == "check" and not item.sampled:
        raise Conflict(f"item {body.item} was not sampled for checking; its label answer stands", "item")
    data = json.loads(item.data)
    if body.skip is not None:
        if stage != "label":
            raise BadInput("only labelers mark items invalid; reject the package instead", "skip")
        if not body.skip.strip():
            raise BadInput("skip needs a reason (why the item is invalid)", "skip")
        text = None
    else:
        checker = checker_for(task)
        if body.results is not None and body.answer is not None:
            raise BadInput("give results or answer, not both", "answer")
        if body.results is None and body.answer is None:
            raise BadInput("give the answer: results=[...] (iTAG shape) or answer=..., or skip=<reason>", "answer")
        results = body.results if body.results is not None else checker.build(body.answer, data)
        text = dumps(checker.normalize(results, data, strict=True))
    item.revision += 1
    setattr(item, fl.STAGE_COLUMN[stage], text)
    # whether the answer kept the suggestion it was shown, as the answer is given
    where_from = sg.origin(text, item.prelabel)
    setattr(item, fl.ORIGIN_COLUMN[stage], where_from)
    if stage == "label":
        item.skipped = body.skip
    row = AnswerRow(
        task_id=task.id,
        item_id=item.id,
        stage=stage,
        revision=item.revision,
        results=text,
        skip_reason=body.skip,
        client_id=body.client_id,
        origin=where_from,
        author=user,
        created_at=utcnow(),
    )
    s.add(row)
    s.flush()
    return _ack(s, task, row, body.item, False)


def store_answer(
    transaction: Callable[[], AbstractContextManager[Session]], user: str, ws: str, ref: str, body: sc.AnswerSubmit
) -> sc.AnswerAck:
    """:func:`submit_answer` in a transaction of its own (``transaction()`` opens one), tried once more
    if the store refuses it: two requests with the same client_id racing in both pass the duplicate
    check, the unique (task, client_id) refuses the second insert, and its retry finds the first,
    which is the answer (``duplicate``)."""
    try:
        with transaction() as s:
            return submit_answer(s, user, ws, ref, body)
    except IntegrityError:
        with transaction() as s:
            return submit_answer(s, user, ws, ref, body)


# ---------------------------------------------------------------------------- pre-labels


def attach_prelabels(s: Session, user: str, ws: str, ref: str, body: sc.PrelabelBatch) -> int:
    _, task = manage(s, user, ws, ref)
    checker = Checker(TemplateSpec.model_validate(task.spec), [lab["name"] for lab in task.labels])
    for i, p in enumerate(body.items):
        item = _item(s, task, p.item)
        data = json.loads(item.data)
        results = p.results if p.results is not None else checker.build(p.answer, data)
        item.prelabel = dumps(normalize(checker, results, data, f"items[{i}] (item {p.item})", strict=False))
        item.prelabel_source = body.source
        sg.check_scores(p.score, p.scores, f"items[{i}]")
        item.prelabel_score = p.score
        item.prelabel_scores = dumps(p.scores) if p.scores else None
    s.flush()
    return len(body.items)
