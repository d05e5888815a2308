"""What a labeler opens, in one request each: the package held in a stage (or the next from its pool)
with the task, the stage table, the items the stage shows (each with the answer it opens with and its
suggestion as simple answers, and whether it is done in the stage) and the task's counters; and the
answers a stage stored in a package, without its items."""

from __future__ import annotations

from sqlalchemy.orm import Session

from pai_lab.labeling import flow as fl
from pai_lab.labeling import schemas as sc
from pai_lab.labeling.items import checker_for, package_items
from pai_lab.labeling.packages import claim
from pai_lab.labeling.tasks import find_task, progress, task_schema
from pai_lab.workspaces import authorize


def open_package(s: Session, user: str, ws: str, ref: str, stage: str = "label", *, platform=None) -> sc.Opened:
    """Claims as :func:`claim` does (the held package first); ``platform`` prepares its images after the commit."""
    package = claim(s, user, ws, ref, stage, platform=platform)
    access = authorize(s, user, ws, "label.read")
    task = find_task(s, access.workspace_id, ref)
    items: list[sc.OpenItem] = []
    if package is not None:
        checker = checker_for(task)
        shown = fl.stage_items(stage, [i.model_dump() for i in package_items(s, user, ws, ref, package.number)])
        items = [
            sc.OpenItem(
                **item,
                done=fl.item_done(stage, item),
                answer=checker.simple(fl.shown_answer(stage, item)),
                suggestion=checker.simple(item["prelabel"]),
            )
            for item in shown
        ]
    return sc.Opened(
        task=task_schema(s, task, user, access.roles),
        stage=sc.StageInfo(name=stage, **fl.STAGE_TABLE[stage]),
        package=package,
        items=items,
        progress=progress(s, task),
    )


def stage_answers(s: Session, user: str, ws: str, ref: str, number: int, stage: str) -> dict[int, list]:
    """The answers ``stage`` stored for package ``number``'s items (item seq -> iTAG results)."""
    column = fl.STAGE_TABLE[stage]["column"]
    return {
        item.seq: value
        for item in package_items(s, user, ws, ref, number)
        if (value := getattr(item, column)) is not None
    }
