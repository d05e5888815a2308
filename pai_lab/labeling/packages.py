"""Packages through the flow: claim, submit, pass or reject, release, reassign (see
:mod:`pai_lab.labeling.flow`). How the packages nobody has started are reordered is
:mod:`pai_lab.labeling.orders`."""

from __future__ import annotations

from typing import Any, cast

from sqlalchemy import CursorResult, func, select, update
from sqlalchemy.orm import Session

from pai_lab.errors import BadInput, Conflict, Forbidden, NotFound
from pai_lab.labeling import flow as fl
from pai_lab.labeling import schemas as sc
from pai_lab.labeling.tables import AnswerRow, ItemRow, PackageEventRow, PackageRow, TaskRow
from pai_lab.labeling.tasks import ROLE_LISTS, find_task, my_roles, prepare_media, task_row
from pai_lab.store import utcnow
from pai_lab.workspaces import authorize
from pai_lab.workspaces.permissions import grant_for


def _changed(result) -> int:
    """Rows an UPDATE changed (a conditional update says whether this caller won the race)."""
    return cast(CursorResult, result).rowcount


def _work(
    s: Session, user: str, ws: str, ref: str, stage: str, task: TaskRow | None = None, access: Any = None
) -> tuple[Any, TaskRow]:
    """Access for doing ``stage`` on a task: everyone with label.work, roles that only have
    it for assigned tasks only when they are named for that stage."""
    if access is None:
        access = authorize(s, user, ws, "label.read")
    if task is None:
        task = find_task(s, access.workspace_id, ref)
    if stage not in fl.stages(task.flow):
        raise BadInput(f"task {task.name!r} has no {stage} stage (its flow is {task.flow})", "stage")
    assigned = user in task.people.get(ROLE_LISTS[stage], [])
    access = access.require("label.work", assigned=assigned)
    if task.offline:
        raise Conflict(f"task {task.name!r} is offline; an admin brings it back with `pai label online`", "task")
    return access, task


def _is_admin(s: Session, user: str, ws: str, task: TaskRow) -> bool:
    """A task admin, or a member whose workspace roles assign work (a team lead): may hand packages on."""
    access = authorize(s, user, ws, "label.read")
    return "admin" in my_roles(task, user, access.roles) or grant_for(list(access.roles), "label.assign") == "all"


def _package_schema(s: Session, task: TaskRow, pkg: PackageRow) -> sc.Package:
    stage = fl.STAGE_OF.get(pkg.state)
    done = pkg.size
    if stage:
        done = (
            s.scalar(
                select(func.count())
                .select_from(ItemRow)
                .where(ItemRow.package_id == pkg.id, fl.item_done_clause(stage, ItemRow))
            )
            or 0
        )
    return sc.Package(
        number=pkg.number,
        key=pkg.key,
        size=pkg.size,
        state=pkg.state,
        holder=pkg.holder,
        labeler=pkg.labeler,
        rework=pkg.rework,
        comment=pkg.comment,
        done=done,
        actions=fl.allowed_actions(task.flow, pkg.state),
    )


def list_packages(s: Session, user: str, ws: str, ref: str, state: str | None = None) -> list[sc.Package]:
    task = task_row(s, user, ws, ref)
    q = select(PackageRow).where(PackageRow.task_id == task.id)
    if state:
        if state not in fl.PACKAGE_STATES:
            raise BadInput(f"unknown package state {state!r}; states are {', '.join(fl.PACKAGE_STATES)}", "state")
        q = q.where(PackageRow.state == state)
    return [_package_schema(s, task, p) for p in s.scalars(q.order_by(PackageRow.number))]


def package_row(s: Session, task: TaskRow, number: int) -> PackageRow:
    pkg = s.scalar(select(PackageRow).where(PackageRow.task_id == task.id, PackageRow.number == number))
    if pkg is None:
        raise NotFound(f"task {task.name!r} has no package {number}", "package")
    return pkg


def _event(s: Session, task: TaskRow, pkg: PackageRow, action: str, old: str, actor: str, comment: str = "") -> None:
    s.add(
        PackageEventRow(
            task_id=task.id,
            package_id=pkg.id,
            action=action,
            from_state=old,
            to_state=pkg.state,
            actor=actor,
            comment=comment,
            at=utcnow(),
        )
    )


def claim(s: Session, user: str, ws: str, ref: str, stage: str = "label", *, platform=None) -> sc.Package | None:
    """The package the caller holds in ``stage``, or the next one from the pool (None: pool empty).
    With the server's ``platform``, the package's images are prepared in the background after the commit."""
    _, task = _work(s, user, ws, ref, stage)
    pkg = _claimed(s, user, task, stage)
    if pkg is None:
        return None
    if platform is not None:
        prepare_media(s, platform, user, ws, task.id, pkg.number)
    return _package_schema(s, task, pkg)


def _held_by(s: Session, user: str, task: TaskRow, stage: str, besides: int = 0) -> PackageRow | None:
    """The first package ``user`` holds in ``stage`` (other than the one whose id is ``besides``)."""
    return s.scalar(
        select(PackageRow)
        .where(
            PackageRow.task_id == task.id,
            PackageRow.holder == user,
            PackageRow.state == fl.WORKING[stage],
            PackageRow.id != besides,
        )
        .order_by(PackageRow.number)
        .limit(1)
    )


def _claimed(s: Session, user: str, task: TaskRow, stage: str) -> PackageRow | None:
    held = _held_by(s, user, task, stage)
    if held is not None:
        return held
    while True:
        pkg = s.scalar(
            select(PackageRow)
            .where(PackageRow.task_id == task.id, PackageRow.state == fl.POOL[stage])
            .order_by(PackageRow.number)
            .limit(1)
        )
        if pkg is None:
            return None
        # a conditional update: two people grabbing at once cannot both get it
        won = _changed(
            s.execute(
                update(PackageRow)
                .where(PackageRow.id == pkg.id, PackageRow.state == fl.POOL[stage])
                .values(state=fl.WORKING[stage], holder=user, updated_at=utcnow())
            )
        )
        if won:
            # the same person's other claim (a second tab) may have got one first, while this one waited
            # for the row: then that one is theirs, and this one goes back to the pool
            first = _held_by(s, user, task, stage, besides=pkg.id)
            if first is not None:
                s.execute(update(PackageRow).where(PackageRow.id == pkg.id).values(state=fl.POOL[stage], holder=None))
                return first
            s.refresh(pkg)
            _event(s, task, pkg, "claim", fl.POOL[stage], user)
            return pkg


def _take(s: Session, pkg: PackageRow) -> None:
    """Hold the package's row, as it was read, for the rest of this transaction, before changing it or
    its items: a move racing this one (a second submit of a double click, a release during a submit)
    waits, then finds the package changed and gets a 409. The conditional update takes the row's lock on
    PostgreSQL and the write lock on SQLite, so nothing changes between the checks made on what was read
    and the writes that follow them."""
    holder = PackageRow.holder.is_(None) if pkg.holder is None else PackageRow.holder == pkg.holder
    taken = _changed(
        s.execute(
            update(PackageRow)
            .where(PackageRow.id == pkg.id, PackageRow.state == pkg.state, holder)
            .values(updated_at=utcnow())
            .execution_options(synchronize_session=False)
        )
    )
    if not taken:
        s.refresh(pkg)
        now = f"held by {pkg.holder}" if pkg.holder else pkg.state.replace("_", " ")
        raise Conflict(f"package {pkg.number} changed meanwhile (it is now {now}); reload it and try again", "package")


def held(
    s: Session,
    user: str,
    ws: str,
    ref: str,
    number: int,
    stage: str | None = None,
    *,
    task: TaskRow | None = None,
    pkg: PackageRow | None = None,
    access: Any = None,
):
    if access is None:
        access = authorize(s, user, ws, "label.read")
    if task is None:
        task = find_task(s, access.workspace_id, ref)
    pkg = pkg or package_row(s, task, number)
    stage = stage or fl.STAGE_OF.get(pkg.state)
    if stage is None:
        raise Conflict(f"package {number} is finished; nothing can be changed in it", "package")
    _work(s, user, ws, ref, stage, task, access)
    if pkg.state != fl.WORKING[stage] or pkg.holder != user:
        who = f"held by {pkg.holder}" if pkg.holder else pkg.state.replace("_", " ")
        raise Conflict(
            f"you do not hold package {number} in the {stage} stage (it is {who}); claim a package first", "package"
        )
    _take(s, pkg)
    return task, pkg, stage


def submit_package(s: Session, user: str, ws: str, ref: str, number: int) -> sc.Package:
    task, pkg, _stage = held(s, user, ws, ref, number, "label")
    missing = s.scalars(
        select(ItemRow.seq)
        .where(ItemRow.package_id == pkg.id, ItemRow.label.is_(None), ItemRow.skipped.is_(None))
        .order_by(ItemRow.seq)
    ).all()
    if missing:
        shown = ", ".join(map(str, missing[:10])) + (" ..." if len(missing) > 10 else "")
        raise Conflict(
            f"{len(missing)} item(s) of package {number} have no answer yet (items {shown}); answer "
            "or skip them, then submit",
            "package",
        )
    old = pkg.state
    pkg.state = fl.move(task.flow, old, "submit")
    pkg.labeler, pkg.holder, pkg.updated_at = user, None, utcnow()
    _event(s, task, pkg, "submit", old, user)
    s.flush()
    return _package_schema(s, task, pkg)


def review(s: Session, user: str, ws: str, ref: str, number: int, verdict: str, comment: str = "") -> sc.Package:
    """A checker's or acceptor's pass or reject of the package they hold."""
    access = authorize(s, user, ws, "label.read")
    task = find_task(s, access.workspace_id, ref)
    pkg = package_row(s, task, number)
    stage = fl.STAGE_OF.get(pkg.state)
    if stage not in ("check", "accept"):
        raise Conflict(
            f"package {number} is {pkg.state.replace('_', ' ')}; only a package being checked or "
            f"accepted can be {'passed' if verdict == 'pass' else 'rejected'}",
            "state",
        )
    task, pkg, stage = held(s, user, ws, ref, number, stage, task=task, pkg=pkg, access=access)
    old = pkg.state
    pkg.state = fl.move(task.flow, old, verdict)
    now = utcnow()
    col = fl.STAGE_COLUMN[stage]
    if verdict == "pass":
        # items passed unchanged get the answer they were passed with, as this stage's answer
        cond = [ItemRow.package_id == pkg.id, getattr(ItemRow, col).is_(None), ItemRow.skipped.is_(None)]
        if stage == "check":
            cond.append(ItemRow.sampled.is_(True))
        for item in s.scalars(select(ItemRow).where(*cond)):
            source = item.check if (stage == "accept" and item.check) else item.label
            kept = item.check_origin if (stage == "accept" and item.check) else item.label_origin
            item.revision += 1
            setattr(item, col, source)
            setattr(item, fl.ORIGIN_COLUMN[stage], kept)
            s.add(
                AnswerRow(
                    task_id=task.id,
                    item_id=item.id,
                    stage=stage,
                    revision=item.revision,
                    results=source,
                    origin=kept,
                    author=user,
                    created_at=now,
                )
            )
        pkg.holder = None
    else:
        if not comment.strip():
            raise BadInput("a rejection needs a comment telling the labeler what to fix", "comment")
        pkg.rework += 1
        pkg.comment = comment
        pkg.holder = pkg.labeler
        # the reviewed answers are for the old labels; the history keeps them
        s.execute(
            update(ItemRow)
            .where(ItemRow.package_id == pkg.id)
            .values(check=None, verify=None, check_origin=None, verify_origin=None)
        )
    pkg.updated_at = now
    _event(s, task, pkg, verdict, old, user, comment)
    s.flush()
    return _package_schema(s, task, pkg)


def release(s: Session, user: str, ws: str, ref: str, number: int) -> sc.Package:
    access = authorize(s, user, ws, "label.read")
    task = find_task(s, access.workspace_id, ref)
    pkg = package_row(s, task, number)
    if pkg.holder != user and not _is_admin(s, user, ws, task):
        raise Forbidden(f"only the holder of package {number} or a task admin may release it", "package")
    _take(s, pkg)
    old = pkg.state
    pkg.state = fl.move(task.flow, old, "release")
    pkg.holder, pkg.updated_at = None, utcnow()
    _event(s, task, pkg, "release", old, user)
    s.flush()
    return _package_schema(s, task, pkg)


def reassign(s: Session, user: str, ws: str, ref: str, number: int, to: str) -> sc.Package:
    access = authorize(s, user, ws, "label.read")
    task = find_task(s, access.workspace_id, ref)
    if not _is_admin(s, user, ws, task):
        raise Forbidden(
            f"only a task admin or a team lead (LabelingTeamLead) may reassign packages of {task.name!r}", "package"
        )
    pkg = package_row(s, task, number)
    stage = fl.STAGE_OF.get(pkg.state)
    if stage and to not in task.people.get(ROLE_LISTS[stage], []):
        raise BadInput(
            f"{to!r} is not a {ROLE_LISTS[stage][:-1]} of task {task.name!r}; add them to its "
            f"{ROLE_LISTS[stage]} first",
            "to",
        )
    _take(s, pkg)
    old = pkg.state
    pkg.state = fl.move(task.flow, old, "reassign")
    pkg.holder, pkg.updated_at = to, utcnow()
    _event(s, task, pkg, "reassign", old, user, f"to {to}")
    s.flush()
    return _package_schema(s, task, pkg)
