"""Task statistics: progress, per-person counts and speed, checker agreement, how many
suggestions were kept."""

from __future__ import annotations

import json

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from pai_lab.labeling import flow as fl
from pai_lab.labeling import schemas as sc
from pai_lab.labeling import suggestions as sg
from pai_lab.labeling.tables import AnswerRow, ItemRow, PackageRow
from pai_lab.labeling.tasks import find_task, task_schema
from pai_lab.workspaces import authorize


def stats(s: Session, user: str, ws: str, ref: str) -> sc.TaskStats:
    access = authorize(s, user, ws, "label.read")
    task = find_task(s, access.workspace_id, ref)
    t = task_schema(s, task, user, access.roles)
    packages = {st: 0 for st in fl.PACKAGE_STATES}
    for st, n in s.execute(
        select(PackageRow.state, func.count()).where(PackageRow.task_id == task.id).group_by(PackageRow.state)
    ):
        packages[st] = n
    people = []
    for author, stage, n, first, last in s.execute(
        select(
            AnswerRow.author,
            AnswerRow.stage,
            func.count(func.distinct(AnswerRow.item_id)),
            func.min(AnswerRow.created_at),
            func.max(AnswerRow.created_at),
        )
        .where(AnswerRow.task_id == task.id)
        .group_by(AnswerRow.author, AnswerRow.stage)
        .order_by(AnswerRow.stage, AnswerRow.author)
    ):
        hours = (last - first).total_seconds() / 3600 if first and last else 0
        people.append(
            sc.PersonStats(
                user=author,
                stage=stage,
                items=n,
                first=first,
                last=last,
                items_per_hour=round(n / hours, 1) if hours > 0 else None,
            )
        )
    # agreement: a checked item agrees when the checker left the labeler's answer as it was
    by_labeler: dict[str, list[int]] = {}
    rows = s.execute(
        select(PackageRow.labeler, ItemRow.label, ItemRow.check)
        .join(PackageRow, PackageRow.id == ItemRow.package_id)
        .where(ItemRow.task_id == task.id, ItemRow.check.is_not(None), ItemRow.label.is_not(None))
    )
    for labeler, label, check in rows:
        counts = by_labeler.setdefault(labeler or "", [0, 0])
        counts[0] += 1
        if label is not None and check is not None:  # as the query asks
            counts[1] += json.loads(label) == json.loads(check)
    total_checked = sum(c[0] for c in by_labeler.values())
    origins = dict(
        s.execute(
            select(ItemRow.label_origin, func.count())
            .where(ItemRow.task_id == task.id, ItemRow.label_origin.is_not(None))
            .group_by(ItemRow.label_origin)
        ).all()
    )
    suggested = (
        s.scalar(
            select(func.count()).select_from(ItemRow).where(ItemRow.task_id == task.id, ItemRow.prelabel.is_not(None))
        )
        or 0
    )
    return sc.TaskStats(
        suggested=suggested,
        suggestions_accepted=origins.get(sg.PREDICTION, 0),
        suggestions_changed=origins.get(sg.CHANGED, 0),
        total=t.total,
        labeled=t.labeled,
        checked=t.checked,
        accepted=t.accepted,
        rejected=t.rejected,
        skipped=t.skipped,
        packages=packages,
        packages_left=t.packages_left,
        people=people,
        agreement=(sum(c[1] for c in by_labeler.values()) / total_checked) if total_checked else None,
        by_labeler=[
            sc.LabelerAgreement(labeler=k, checked=v[0], agreed=v[1], accuracy=v[1] / v[0])
            for k, v in sorted(by_labeler.items())
        ],
    )
