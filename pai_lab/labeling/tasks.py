"""Labeling tasks and custom templates: creation, lookup, people, copies.

Roles are checked with :func:`pai_lab.workspaces.authorize`: ``label.manage`` (Owner,
Administrator, LabelingAdmin) creates, distributes, exports and administers tasks;
``label.work`` lets the other roles act only on the stages of tasks they are assigned to.
"""

from __future__ import annotations

import json
import re
import secrets
import time
from collections.abc import Iterable
from typing import TypedDict

from sqlalchemy import case, func, select, update
from sqlalchemy.orm import Session

from pai_lab.errors import BadInput, Conflict, Forbidden, NotFound
from pai_lab.labeling import flow as fl
from pai_lab.labeling import schemas as sc
from pai_lab.labeling.intake import NewItem, check_line, check_package_size, contained, insert_items, lines_from_dataset
from pai_lab.labeling.tables import ItemRow, PackageEventRow, PackageRow, TaskRow, TemplateRow
from pai_lab.labeling.templates import BUILTIN, BUILTIN_IDS, CUSTOM_NAME, TemplateSpec, builtin, parse_spec
from pai_lab.store import after_commit, new_id, utcnow
from pai_lab.workspaces import authorize
from pai_lab.workspaces.permissions import grant_for
from pai_lab.workspaces.tables import MemberRow

TASK_NAME = re.compile(r"^[A-Za-z0-9\u4e00-\u9fff][A-Za-z0-9\u4e00-\u9fff_-]{0,99}$")
ROLE_LISTS = {"label": "labelers", "check": "checkers", "accept": "acceptors"}
NEEDS_LABELS = {
    "text-classification",
    "image-classification",
    "video-classification",
    "audio-classification",
    "ner",
    "relation",
    "object-detection",
    "audio-segmentation",
}
# Seed rule: the smallest fixed package size allowed for a dataset of up to N items.
_EPOCH_MS = 1288834974657  # snowflake epoch: ids are 19 digits, like iTAG's


def new_task_id() -> str:
    ms = int(time.time() * 1000) - _EPOCH_MS
    return str((ms << 22) | secrets.randbits(22))


# ---------------------------------------------------------------------------- templates


def list_templates(s: Session, user: str, ws: str) -> list[sc.TemplateInfo]:
    access = authorize(s, user, ws, "label.read")
    out = [
        sc.TemplateInfo(
            id=tid, kind="builtin", media=media, description=text, spec=builtin(tid, multi=False).model_dump()
        )
        for tid, (media, text) in BUILTIN.items()
    ]
    rows = s.scalars(
        select(TemplateRow).where(TemplateRow.workspace_id == access.workspace_id).order_by(TemplateRow.name)
    ).all()
    out += [_template_info(r) for r in rows]
    return out


def _template_info(r: TemplateRow) -> sc.TemplateInfo:
    spec = TemplateSpec.model_validate(r.spec)
    media = "+".join(dict.fromkeys(c.type for c in spec.contents))
    return sc.TemplateInfo(
        id=r.name,
        kind="custom",
        media=media,
        description=spec.description,
        spec=r.spec,
        created_by=r.created_by,
        created_at=r.created_at,
    )


def create_template(s: Session, user: str, ws: str, spec_data: dict) -> sc.TemplateInfo:
    access = authorize(s, user, ws, "label.manage")
    spec = parse_spec(spec_data)
    if not CUSTOM_NAME.match(spec.name):
        raise BadInput(
            f"spec.name {spec.name!r}: use 1-64 letters, digits, _ or -, starting with a letter or digit", "spec.name"
        )
    if spec.name in BUILTIN:
        raise Conflict(f"{spec.name!r} is a built-in template id; pick another name", "spec.name")
    if s.scalar(
        select(TemplateRow).where(TemplateRow.workspace_id == access.workspace_id, TemplateRow.name == spec.name)
    ):
        raise Conflict(f"a template named {spec.name!r} already exists here", "spec.name")
    row = TemplateRow(
        id=new_id("tpl"),
        workspace_id=access.workspace_id,
        name=spec.name,
        spec=spec.model_dump(),
        created_by=user,
        created_at=utcnow(),
    )
    s.add(row)
    s.flush()
    return _template_info(row)


def delete_template(s: Session, user: str, ws: str, name: str) -> None:
    access = authorize(s, user, ws, "label.manage")
    row = s.scalar(select(TemplateRow).where(TemplateRow.workspace_id == access.workspace_id, TemplateRow.name == name))
    if row is None:
        raise NotFound(f"no custom template named {name!r}", "template")
    s.delete(row)


def resolve_template(
    s: Session, workspace_id: str, template: str, *, multi: bool, relation_labels: list[str], has_labels: bool
) -> TemplateSpec:
    if template in BUILTIN:
        return builtin(template, multi=multi, relation_labels=relation_labels, has_labels=has_labels)
    row = s.scalar(select(TemplateRow).where(TemplateRow.workspace_id == workspace_id, TemplateRow.name == template))
    if row is None:
        raise BadInput(
            f"unknown template {template!r}; built-in templates are: {', '.join(BUILTIN_IDS)}; "
            "`pai label templates` lists the custom ones",
            "template",
        )
    return TemplateSpec.model_validate(row.spec)


def _labels(values: list) -> list[dict]:
    out, seen = [], set()
    for v in values:
        spec = sc.LabelSpec(name=v) if isinstance(v, str) else v
        if spec.name in seen:
            raise BadInput(f"label {spec.name!r} is given twice", "labels")
        seen.add(spec.name)
        out.append(spec.model_dump())
    return out


def _people(s: Session, workspace_id: str, user: str, body, stages: list[str]) -> dict[str, list[str]]:
    people = {
        "labelers": list(body.labelers or []),
        "checkers": list(body.checkers or []),
        "acceptors": list(body.acceptors or []),
        "admins": list(body.admins or []),
    }
    # In a notebook the creator does every stage unless people are named.
    for stage in stages:
        people[ROLE_LISTS[stage]] = people[ROLE_LISTS[stage]] or [user]
    people["admins"] = people["admins"] or [user]
    members = set(s.scalars(select(MemberRow.username).where(MemberRow.workspace_id == workspace_id)))
    for key, names in people.items():
        for name in names:
            if name not in members:
                raise BadInput(
                    f"{key}: {name!r} is not a member of this workspace; add them first (`pai member add`)", key
                )
    return people


def _bind_keys(spec: TemplateSpec, content_keys: dict[str, str]) -> TemplateSpec:
    if not content_keys:
        return spec
    spec = spec.model_copy(deep=True)
    known = {c.key for c in spec.contents}
    for key in content_keys:
        if key not in known:
            raise BadInput(
                f"content_keys: the template has no content {key!r}; its contents are {sorted(known)}", "content_keys"
            )
    for c in spec.contents:
        c.key = content_keys.get(c.key, c.key)
    for q in spec.questions:
        if q.bind:
            q.bind = content_keys.get(q.bind, q.bind)
    return spec


def create_task(
    s: Session,
    user: str,
    ws: str,
    body: sc.TaskCreate,
    *,
    items: Iterable[NewItem] | None = None,
    task_id: str | None = None,
    source: str | None = None,
    containment=None,
    platform=None,
) -> sc.Task:
    """``containment`` (the server's policy) checks the items given in the request (inline ``lines``, or an
    import's ``content``) at creation; a dataset's items were checked when it was registered. With the
    server's ``platform``, the task's first images are prepared in the background once it is committed."""
    access = authorize(s, user, ws, "label.manage")
    if not isinstance(body.name, str) or not TASK_NAME.match(body.name):
        raise BadInput(
            f"invalid task name {body.name!r}: 1-100 characters, starting with a letter, digit or "
            "Chinese character; '_' and '-' allowed",
            "name",
        )
    if s.scalar(select(TaskRow.id).where(TaskRow.workspace_id == access.workspace_id, TaskRow.name == body.name)):
        raise Conflict(f"a labeling task named {body.name!r} already exists here; pick another name", "name")
    labels = _labels(body.labels)
    if body.template in NEEDS_LABELS and not labels:
        raise BadInput(f"the {body.template} template needs labels: give at least one (labels=[...])", "labels")
    if body.template == "relation" and not body.relation_labels:
        raise BadInput("the relation template needs relation_labels (the names of the links)", "relation_labels")
    spec = resolve_template(
        s,
        access.workspace_id,
        body.template,
        multi=body.multi,
        relation_labels=body.relation_labels,
        has_labels=bool(labels),
    )
    spec = _bind_keys(spec, body.content_keys)
    stages = fl.stages(body.flow)
    if body.package_size is not None and body.package_by:
        raise BadInput("give package_size or package_by, not both", "package_by")
    if task_id is None or s.get(TaskRow, task_id) is not None:
        task_id = new_task_id()
    task = TaskRow(
        id=task_id,
        workspace_id=access.workspace_id,
        name=body.name,
        description=body.description,
        template=body.template,
        spec=spec.model_dump(),
        labels=labels,
        multi=body.multi,
        flow=body.flow,
        check_ratio=body.check_ratio,
        package_size=None if body.package_by else (body.package_size or 20),
        package_by=body.package_by,
        people=_people(s, access.workspace_id, user, body, stages),
        offline=False,
        initialized=False,
        dataset=body.dataset,
        dataset_version=body.dataset_version,
        source=source or ("dataset" if body.dataset else "lines"),
        total=0,
        created_by=user,
        created_at=utcnow(),
    )
    s.add(task)
    s.flush()
    keys = {c.key for c in spec.contents}
    given = items is not None
    if items is None:
        if body.dataset and body.lines:
            raise BadInput("give a dataset or inline lines, not both", "lines")
        if body.dataset:
            raw: Iterable = lines_from_dataset(s, user, ws, body.dataset, body.dataset_version)
        elif body.lines:
            raw = body.lines
        else:
            raise BadInput('a task needs items: give dataset=<name> or lines=[{"data": {...}}, ...]', "dataset")
        if isinstance(raw, list) and task.package_size:
            check_package_size(task.package_size, len(raw))
        items = (NewItem(check_line(line, f"line {i + 1}", keys)) for i, line in enumerate(raw))
    if containment is not None and (given or not body.dataset):
        items = contained(items, keys, containment, "content" if given else "lines")
    insert_items(s, task, spec, items, author=user)
    if platform is not None:
        prepare_media(s, platform, user, ws, task.id)
    return task_schema(s, task, user, access.roles)


def prepare_media(s: Session, platform, user: str, ws: str, task_id: str, package: int | None = None) -> None:
    """Prepare the images of a new task's first items (or of a claimed package) once the write commits."""
    from pai_lab.labeling import media

    after_commit(s, lambda: media.prepare_items(platform, user, ws, task_id, package=package))


# ---------------------------------------------------------------------------- tasks


def find_task(s: Session, workspace_id: str, ref: str) -> TaskRow:
    row = s.scalar(
        select(TaskRow).where(TaskRow.workspace_id == workspace_id, (TaskRow.id == ref) | (TaskRow.name == ref))
    )
    if row is None:
        raise NotFound(f"no labeling task {ref!r} in this workspace; `pai label ls` lists them", "task")
    return row


class _Counts(TypedDict, total=False):
    labeled: int
    checked: int
    accepted: int
    skipped: int
    rejected: int
    packages: dict[str, int]  # packages by state


def _counts(s: Session, task_ids: list[str]) -> dict[str, _Counts]:
    labeled = func.sum(case(((ItemRow.label.is_not(None)) | (ItemRow.skipped.is_not(None)), 1), else_=0))
    rows = s.execute(
        select(
            ItemRow.task_id, labeled, func.count(ItemRow.check), func.count(ItemRow.verify), func.count(ItemRow.skipped)
        )
        .where(ItemRow.task_id.in_(task_ids))
        .group_by(ItemRow.task_id)
    ).all()
    out = {t: _Counts(labeled=int(a or 0), checked=b, accepted=c, skipped=d) for t, a, b, c, d in rows}
    states = s.execute(
        select(PackageRow.task_id, PackageRow.state, func.count())
        .where(PackageRow.task_id.in_(task_ids))
        .group_by(PackageRow.task_id, PackageRow.state)
    ).all()
    for t, state, n in states:
        out.setdefault(t, {}).setdefault("packages", {})[state] = n
    rejects = s.execute(
        select(PackageEventRow.task_id, func.count())
        .where(PackageEventRow.task_id.in_(task_ids), PackageEventRow.action == "reject")
        .group_by(PackageEventRow.task_id)
    )
    for t, n in rejects:
        out.setdefault(t, {})["rejected"] = n
    return out


def my_roles(task: TaskRow, user: str, ws_roles: tuple[str, ...] | list[str]) -> list[str]:
    people = task.people or {}
    roles = [
        r
        for r, key in (("labeler", "labelers"), ("checker", "checkers"), ("acceptor", "acceptors"))
        if user in people.get(key, [])
    ]
    if user in people.get("admins", []) or grant_for(list(ws_roles), "label.manage") == "all":
        roles.append("admin")
    return roles


def progress(s: Session, task: TaskRow) -> sc.Progress:
    """The task's counters now: what an answer's acknowledgement and an opened package carry."""
    c = _counts(s, [task.id]).get(task.id, _Counts())
    return sc.Progress(
        total=task.total, labeled=c.get("labeled", 0), checked=c.get("checked", 0), accepted=c.get("accepted", 0)
    )


def task_schema(s: Session, task: TaskRow, user: str, ws_roles, counts: _Counts | None = None) -> sc.Task:
    c = counts if counts is not None else _counts(s, [task.id]).get(task.id, _Counts())
    packages = c.get("packages", {})
    state = fl.INITIALIZING if not task.initialized else fl.task_state(task.flow, set(packages), task.offline)
    return sc.Task(
        id=task.id,
        name=task.name,
        template=task.template,
        state=state,
        total=task.total,
        labeled=c.get("labeled", 0),
        checked=c.get("checked", 0),
        accepted=c.get("accepted", 0),
        rejected=c.get("rejected", 0),
        skipped=c.get("skipped", 0),
        packages_left=sum(n for st, n in packages.items() if st != fl.DONE),
        my_roles=my_roles(task, user, ws_roles),
        description=task.description,
        flow=task.flow,
        labels=[sc.LabelSpec(**lab) for lab in task.labels],
        multi=task.multi,
        check_ratio=task.check_ratio,
        package_size=task.package_size,
        package_by=task.package_by,
        people=task.people,
        dataset=task.dataset,
        dataset_version=task.dataset_version,
        spec=task.spec,
        created_by=task.created_by,
        created_at=task.created_at,
    )


def list_tasks(s: Session, user: str, ws: str) -> list[sc.Task]:
    access = authorize(s, user, ws, "label.read")
    rows = s.scalars(
        select(TaskRow)
        .where(TaskRow.workspace_id == access.workspace_id)
        .order_by(TaskRow.created_at.desc(), TaskRow.name)
    ).all()
    counts = _counts(s, [r.id for r in rows]) if rows else {}
    return [task_schema(s, r, user, access.roles, counts.get(r.id, _Counts())) for r in rows]


def get_task(s: Session, user: str, ws: str, ref: str) -> sc.Task:
    access = authorize(s, user, ws, "label.read")
    return task_schema(s, find_task(s, access.workspace_id, ref), user, access.roles)


def task_row(s: Session, user: str, ws: str, ref: str, action: str = "label.read") -> TaskRow:
    access = authorize(s, user, ws, action)
    return find_task(s, access.workspace_id, ref)


def manage(s: Session, user: str, ws: str, ref: str):
    access = authorize(s, user, ws, "label.manage")
    return access, find_task(s, access.workspace_id, ref)


def delete_task(s: Session, user: str, ws: str, ref: str) -> None:
    _, task = manage(s, user, ws, ref)
    s.delete(task)
    s.flush()


def set_offline(s: Session, user: str, ws: str, ref: str, offline: bool) -> sc.Task:
    access, task = manage(s, user, ws, ref)
    task.offline = offline
    s.flush()
    return task_schema(s, task, user, access.roles)


def set_people(s: Session, user: str, ws: str, ref: str, body: sc.TaskPeople) -> sc.Task:
    access = authorize(s, user, ws, "label.assign")  # team leads assign people too
    task = find_task(s, access.workspace_id, ref)
    if body.admins is not None and grant_for(list(access.roles), "label.manage") != "all":
        raise Forbidden(
            "admins: only Owner, Administrator or LabelingAdmin name a task's admins; a team lead "
            "assigns labelers, checkers and acceptors",
            "admins",
        )
    people = dict(task.people)
    members = set(s.scalars(select(MemberRow.username).where(MemberRow.workspace_id == access.workspace_id)))
    for key in ("labelers", "checkers", "acceptors", "admins"):
        names = getattr(body, key)
        if names is None:
            continue
        for name in names:
            if name not in members:
                raise BadInput(f"{key}: {name!r} is not a member of this workspace", key)
        people[key] = list(names)
    task.people = people
    s.flush()
    return task_schema(s, task, user, access.roles)


def copy_task(s: Session, user: str, ws: str, ref: str, name: str) -> sc.Task:
    _access, src = manage(s, user, ws, ref)
    body = sc.TaskCreate(
        name=name,
        template=src.template,
        description=src.description,
        labels=[sc.LabelSpec(**lab) for lab in src.labels],
        multi=src.multi,
        flow=src.flow,
        check_ratio=src.check_ratio,
        package_size=src.package_size,
        package_by=src.package_by,
        dataset=src.dataset,
        dataset_version=src.dataset_version,
        **{k: v for k, v in src.people.items()},
    )
    rows = s.execute(
        select(ItemRow.data).where(ItemRow.task_id == src.id).order_by(ItemRow.seq).execution_options(yield_per=2000)
    ).scalars()
    items = [NewItem(json.loads(d)) for d in rows]
    out = create_task(s, user, ws, body.model_copy(update={"template": src.template}), items=items, source="copy")
    # the copy keeps the source's template as it was, even if a custom template changed since
    s.execute(update(TaskRow).where(TaskRow.id == out.id).values(spec=src.spec))
    return get_task(s, user, ws, out.id)
