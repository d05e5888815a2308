"""Labeling domain logic over a store session: tasks, packages, answers, pre-labels, statistics.

Roles are checked with :func:`pai_lab.workspaces.authorize`: ``label.manage`` (Owner,
Administrator, LabelingAdmin) creates, distributes, exports and administers tasks;
``label.work`` lets the other roles act only on the stages of tasks they are assigned to.
"""

from __future__ import annotations

import json
import math
import random
import re
import secrets
import time
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator

from sqlalchemy import bindparam, case, func, select, update
from sqlalchemy.orm import Session

from pai_lab.errors import BadInput, Conflict, Forbidden, NotFound
from pai_lab.labeling import flow as fl
from pai_lab.labeling import schemas as sc
from pai_lab.labeling import suggestions as sg
from pai_lab.labeling.answers import Checker, dumps
from pai_lab.labeling.tables import AnswerRow, ItemRow, PackageEventRow, PackageRow, TaskRow, TemplateRow
from pai_lab.labeling.templates import BUILTIN, BUILTIN_IDS, CUSTOM_NAME, TemplateSpec, builtin, parse_spec
from pai_lab.store import new_id, utcnow
from pai_lab.workspaces import authorize
from pai_lab.workspaces.tables import MemberRow

TASK_NAME = re.compile(r"^[A-Za-z0-9\u4e00-\u9fff][A-Za-z0-9\u4e00-\u9fff_-]{0,99}$")
ROLE_LISTS = {"label": "labelers", "check": "checkers", "accept": "acceptors"}
STAGE_COLUMN = {"label": "label", "check": "check", "accept": "verify"}
ORIGIN_COLUMN = {"label": "label_origin", "check": "check_origin", "accept": "verify_origin"}
NEEDS_LABELS = {"text-classification", "image-classification", "video-classification", "audio-classification",
                "ner", "relation", "object-detection", "audio-segmentation"}
# Seed rule: the smallest fixed package size allowed for a dataset of up to N items.
MIN_PACKAGE = ((20_000, 1), (100_000, 5), (500_000, 25), (1_000_000, 50))
_EPOCH_MS = 1288834974657  # snowflake epoch: ids are 19 digits, like iTAG's


def new_task_id() -> str:
    ms = int(time.time() * 1000) - _EPOCH_MS
    return str((ms << 22) | secrets.randbits(22))


def min_package_size(total: int) -> int:
    for limit, size in MIN_PACKAGE:
        if total <= limit:
            return size
    raise BadInput(f"a task holds at most 1,000,000 items; this one has {total:,}; split the dataset", "dataset")


# ---------------------------------------------------------------------------- templates


def list_templates(s: Session, user: str, ws: str) -> list[sc.TemplateInfo]:
    access = authorize(s, user, ws, "label.read")
    out = [sc.TemplateInfo(id=tid, kind="builtin", media=media, description=text,
                           spec=builtin(tid, multi=False).model_dump())
           for tid, (media, text) in BUILTIN.items()]
    rows = s.scalars(select(TemplateRow).where(TemplateRow.workspace_id == access.workspace_id)
                     .order_by(TemplateRow.name)).all()
    out += [_template_info(r) for r in rows]
    return out


def _template_info(r: TemplateRow) -> sc.TemplateInfo:
    spec = TemplateSpec.model_validate(r.spec)
    media = "+".join(dict.fromkeys(c.type for c in spec.contents))
    return sc.TemplateInfo(id=r.name, kind="custom", media=media, description=spec.description, spec=r.spec,
                           created_by=r.created_by, created_at=r.created_at)


def create_template(s: Session, user: str, ws: str, spec_data: dict) -> sc.TemplateInfo:
    access = authorize(s, user, ws, "label.manage")
    spec = parse_spec(spec_data)
    if not CUSTOM_NAME.match(spec.name):
        raise BadInput(f"spec.name {spec.name!r}: use 1-64 letters, digits, _ or -, starting with a letter or digit",
                       "spec.name")
    if spec.name in BUILTIN:
        raise Conflict(f"{spec.name!r} is a built-in template id; pick another name", "spec.name")
    if s.scalar(select(TemplateRow).where(TemplateRow.workspace_id == access.workspace_id,
                                          TemplateRow.name == spec.name)):
        raise Conflict(f"a template named {spec.name!r} already exists here", "spec.name")
    row = TemplateRow(id=new_id("tpl"), workspace_id=access.workspace_id, name=spec.name,
                      spec=spec.model_dump(), created_by=user, created_at=utcnow())
    s.add(row)
    s.flush()
    return _template_info(row)


def delete_template(s: Session, user: str, ws: str, name: str) -> None:
    access = authorize(s, user, ws, "label.manage")
    row = s.scalar(select(TemplateRow).where(TemplateRow.workspace_id == access.workspace_id,
                                             TemplateRow.name == name))
    if row is None:
        raise NotFound(f"no custom template named {name!r}", "template")
    s.delete(row)


def resolve_template(s: Session, workspace_id: str, template: str, *, multi: bool, relation_labels: list[str],
                     has_labels: bool) -> TemplateSpec:
    if template in BUILTIN:
        return builtin(template, multi=multi, relation_labels=relation_labels, has_labels=has_labels)
    row = s.scalar(select(TemplateRow).where(TemplateRow.workspace_id == workspace_id, TemplateRow.name == template))
    if row is None:
        raise BadInput(f"unknown template {template!r}; built-in templates are: {', '.join(BUILTIN_IDS)}; "
                       "`pai label templates` lists the custom ones", "template")
    return TemplateSpec.model_validate(row.spec)


# ---------------------------------------------------------------------------- items in


@dataclass
class NewItem:
    """One manifest line to add to a task, with any answers it already carries."""

    data: dict
    answers: dict[str, list] = field(default_factory=dict)  # stage -> results
    skipped: str | None = None
    prelabel: list | None = None


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
    people = {"labelers": list(body.labelers or []), "checkers": list(body.checkers or []),
              "acceptors": list(body.acceptors or []), "admins": list(body.admins or [])}
    # In a notebook the creator does every stage unless people are named.
    for stage in stages:
        people[ROLE_LISTS[stage]] = people[ROLE_LISTS[stage]] or [user]
    people["admins"] = people["admins"] or [user]
    members = set(s.scalars(select(MemberRow.username).where(MemberRow.workspace_id == workspace_id)))
    for key, names in people.items():
        for name in names:
            if name not in members:
                raise BadInput(f"{key}: {name!r} is not a member of this workspace; add them first "
                               "(`pai member add`)", key)
    return people


def _bind_keys(spec: TemplateSpec, content_keys: dict[str, str]) -> TemplateSpec:
    if not content_keys:
        return spec
    spec = spec.model_copy(deep=True)
    known = {c.key for c in spec.contents}
    for key in content_keys:
        if key not in known:
            raise BadInput(f"content_keys: the template has no content {key!r}; its contents are {sorted(known)}",
                           "content_keys")
    for c in spec.contents:
        c.key = content_keys.get(c.key, c.key)
    for q in spec.questions:
        if q.bind:
            q.bind = content_keys.get(q.bind, q.bind)
    return spec


def _check_line(line: Any, where: str, keys: set[str]) -> dict:
    if not isinstance(line, dict) or not isinstance(line.get("data"), dict):
        raise BadInput(f"{where}: a manifest line must be an object {{\"data\": {{...}}}}", "lines")
    missing = [k for k in keys if k not in line["data"]]
    if missing:
        raise BadInput(f"{where}: data has no {missing[0]!r} key, which the template shows; bind another key "
                       "with content_keys", "lines")
    return line["data"]


def _lines_from_dataset(s: Session, user: str, ws: str, dataset: str, version: int | None) -> Iterator[dict]:
    try:
        from pai_lab.datasets.service import iter_items
    except ImportError:
        raise BadInput("datasets are not available in this installation; pass the manifest lines inline",
                       "dataset") from None
    return iter_items(s, user, ws, dataset, version=version)


def _contained(items: Iterable[NewItem], keys: set[str], containment, field: str) -> Iterator[NewItem]:
    """Items whose shown values (and ``source``) name paths or URLs the server's policy allows."""
    for i, item in enumerate(items):
        try:
            containment.check_item(item.data, field, sorted(keys | {"source"}))
        except BadInput as exc:
            raise BadInput(f"line {i + 1}: {exc.message}", field) from None
        yield item


def create_task(s: Session, user: str, ws: str, body: sc.TaskCreate, *, items: Iterable[NewItem] | None = None,
                task_id: str | None = None, source: str | None = None, containment=None) -> sc.Task:
    """``containment`` (the server's policy) checks the items given in the request (inline ``lines``, or an
    import's ``content``) at creation; a dataset's items were checked when it was registered."""
    access = authorize(s, user, ws, "label.manage")
    if not isinstance(body.name, str) or not TASK_NAME.match(body.name):
        raise BadInput(f"invalid task name {body.name!r}: 1-100 characters, starting with a letter, digit or "
                       "Chinese character; '_' and '-' allowed", "name")
    if s.scalar(select(TaskRow.id).where(TaskRow.workspace_id == access.workspace_id, TaskRow.name == body.name)):
        raise Conflict(f"a labeling task named {body.name!r} already exists here; pick another name", "name")
    labels = _labels(body.labels)
    if body.template in NEEDS_LABELS and not labels:
        raise BadInput(f"the {body.template} template needs labels: give at least one (labels=[...])", "labels")
    if body.template == "relation" and not body.relation_labels:
        raise BadInput("the relation template needs relation_labels (the names of the links)", "relation_labels")
    spec = resolve_template(s, access.workspace_id, body.template, multi=body.multi,
                            relation_labels=body.relation_labels, has_labels=bool(labels))
    spec = _bind_keys(spec, body.content_keys)
    stages = fl.stages(body.flow)
    if body.package_size is not None and body.package_by:
        raise BadInput("give package_size or package_by, not both", "package_by")
    if task_id is None or s.get(TaskRow, task_id) is not None:
        task_id = new_task_id()
    task = TaskRow(id=task_id, workspace_id=access.workspace_id, name=body.name, description=body.description,
                   template=body.template, spec=spec.model_dump(), labels=labels, multi=body.multi, flow=body.flow,
                   check_ratio=body.check_ratio, package_size=None if body.package_by else (body.package_size or 20),
                   package_by=body.package_by, people=_people(s, access.workspace_id, user, body, stages),
                   offline=False, initialized=False, dataset=body.dataset, dataset_version=body.dataset_version,
                   source=source or ("dataset" if body.dataset else "lines"), total=0, created_by=user,
                   created_at=utcnow())
    s.add(task)
    s.flush()
    keys = {c.key for c in spec.contents}
    given = items is not None
    if items is None:
        if body.dataset and body.lines:
            raise BadInput("give a dataset or inline lines, not both", "lines")
        if body.dataset:
            raw: Iterable = _lines_from_dataset(s, user, ws, body.dataset, body.dataset_version)
        elif body.lines:
            raw = body.lines
        else:
            raise BadInput("a task needs items: give dataset=<name> or lines=[{\"data\": {...}}, ...]", "dataset")
        if isinstance(raw, list) and task.package_size:
            _check_package_size(task.package_size, len(raw))
        items = (NewItem(_check_line(line, f"line {i + 1}", keys)) for i, line in enumerate(raw))
    if containment is not None and (given or not body.dataset):
        items = _contained(items, keys, containment, "content" if given else "lines")
    _insert_items(s, task, spec, items, author=user)
    return _task_schema(s, task, user, access.roles)


def _package_key(data: dict, field_name: str, where: str) -> str:
    name = field_name.removeprefix("data.")
    if name not in data:
        raise BadInput(f"{where}: data has no {name!r} field to package by", "package_by")
    value = data[name]
    return value if isinstance(value, str) else dumps(value)


def _insert_items(s: Session, task: TaskRow, spec: TemplateSpec, items: Iterable[NewItem], *, author: str) -> None:
    checker = Checker(spec, [l["name"] for l in task.labels])
    order = fl.stages(task.flow)
    packages: dict[Any, PackageRow] = {}
    reached: dict[int, list[int]] = {}  # package id -> items answered per stage
    now = utcnow()
    batch: list[dict] = []
    seq = 0

    def package_for(data: dict) -> PackageRow:
        if task.package_by:
            key: Any = _package_key(data, task.package_by, f"line {seq + 1}")
        else:
            key = seq // task.package_size
        pkg = packages.get(key)
        if pkg is None:
            pkg = PackageRow(task_id=task.id, number=len(packages) + 1, key=key if task.package_by else None,
                             size=0, state=fl.POOL["label"], rework=0, comment="", updated_at=now)
            s.add(pkg)
            s.flush()
            packages[key] = pkg
            reached[pkg.id] = [0, 0, 0]
        return pkg

    def flush() -> None:
        if not batch:
            return
        answered = [(row["seq"], row.pop("_answers")) for row in batch]
        s.connection().execute(ItemRow.__table__.insert(), batch)  # executemany: the fast path
        if any(a for _, a in answered):
            ids = dict(s.execute(select(ItemRow.seq, ItemRow.id).where(
                ItemRow.task_id == task.id, ItemRow.seq.between(answered[0][0], answered[-1][0]))).all())
            rows = []
            for seq_, stored in answered:
                for rev, (stage, text, skip) in enumerate(stored, 1):
                    rows.append({"task_id": task.id, "item_id": ids[seq_], "stage": stage, "revision": rev,
                                 "results": text, "skip_reason": skip, "client_id": None, "author": author,
                                 "created_at": now})
            if rows:
                s.connection().execute(AnswerRow.__table__.insert(), rows)
        batch.clear()

    for item in items:
        pkg = package_for(item.data)
        pkg.size += 1
        row: dict[str, Any] = {"task_id": task.id, "seq": seq, "package_id": pkg.id, "data": dumps(item.data),
                               "sampled": True, "skipped": item.skipped, "label": None, "check": None,
                               "verify": None, "prelabel": None, "prelabel_source": None, "revision": 0,
                               "_answers": []}
        where = f"line {seq + 1}"
        if item.prelabel is not None:
            row["prelabel"] = dumps(_normalize(checker, item.prelabel, item.data, where, strict=False))
            row["prelabel_source"] = "import"
        if item.skipped is not None:
            row["_answers"].append(("label", None, item.skipped))
        for i, stage in enumerate(order):
            results = item.answers.get(stage)
            if results is None:
                continue
            text = dumps(_normalize(checker, results, item.data, where, strict=False))
            row[STAGE_COLUMN[stage]] = text
            row["_answers"].append((stage, text, None))
        for i, stage in enumerate(order):
            if item.answers.get(stage) is not None or (stage == "label" and item.skipped is not None):
                reached[pkg.id][i] += 1
        row["revision"] = len(row["_answers"])
        batch.append(row)
        seq += 1
        if len(batch) >= 2000:
            flush()
    flush()
    if seq == 0:
        raise BadInput("there are no items to label: the manifest is empty", "lines")
    if task.package_size:
        _check_package_size(task.package_size, seq)
    if len(packages) > 20_000:
        raise BadInput(f"package_by {task.package_by!r} makes {len(packages):,} packages; at most 20,000 are "
                       "allowed: pick a coarser field", "package_by")
    # Imported answers: a package starts in the first stage some of its items still lack.
    for pkg in packages.values():
        counts = reached[pkg.id]
        state = fl.DONE
        for i, stage in enumerate(order):
            if counts[i] < pkg.size:
                state = fl.POOL[stage]
                break
        pkg.state = state
    if task.check_ratio < 1 and "check" in order:
        _sample(s, task, list(packages.values()))
    task.total = seq
    task.initialized = True
    s.flush()


def _check_package_size(size: int, total: int) -> None:
    if size < min_package_size(total):
        raise BadInput(f"package_size {size} is too small for {total:,} items; use at least "
                       f"{min_package_size(total)} (at most 20,000 packages per task)", "package_size")


def _normalize(checker: Checker, results: Any, data: dict, where: str, *, strict: bool) -> list:
    try:
        return checker.normalize(results, data, strict=strict)
    except BadInput as exc:
        raise BadInput(f"{where}: {exc.message}", exc.field) from None


def _sample(s: Session, task: TaskRow, packages: list[PackageRow]) -> None:
    """Pick ceil(ratio * size) items of each package for checking; the rest skip the check."""
    for pkg in packages:
        ids = list(s.scalars(select(ItemRow.id).where(ItemRow.package_id == pkg.id).order_by(ItemRow.seq)))
        keep = set(random.Random(f"{task.id}:{pkg.number}").sample(ids, math.ceil(task.check_ratio * len(ids))))
        skip = [i for i in ids if i not in keep]
        if skip:
            s.execute(update(ItemRow).where(ItemRow.id.in_(skip)).values(sampled=False))


# ---------------------------------------------------------------------------- tasks


def _find(s: Session, workspace_id: str, ref: str) -> TaskRow:
    row = s.scalar(select(TaskRow).where(TaskRow.workspace_id == workspace_id,
                                         (TaskRow.id == ref) | (TaskRow.name == ref)))
    if row is None:
        raise NotFound(f"no labeling task {ref!r} in this workspace; `pai label ls` lists them", "task")
    return row


def _counts(s: Session, task_ids: list[str]) -> dict[str, dict[str, int]]:
    labeled = func.sum(case(((ItemRow.label.is_not(None)) | (ItemRow.skipped.is_not(None)), 1), else_=0))
    rows = s.execute(select(ItemRow.task_id, labeled, func.count(ItemRow.check), func.count(ItemRow.verify),
                            func.count(ItemRow.skipped))
                     .where(ItemRow.task_id.in_(task_ids)).group_by(ItemRow.task_id)).all()
    out = {t: {"labeled": int(a or 0), "checked": b, "accepted": c, "skipped": d} for t, a, b, c, d in rows}
    states = s.execute(select(PackageRow.task_id, PackageRow.state, func.count())
                       .where(PackageRow.task_id.in_(task_ids)).group_by(PackageRow.task_id, PackageRow.state)).all()
    for t, state, n in states:
        out.setdefault(t, {}).setdefault("packages", {})[state] = n
    rejects = s.execute(select(PackageEventRow.task_id, func.count()).where(
        PackageEventRow.task_id.in_(task_ids), PackageEventRow.action == "reject").group_by(PackageEventRow.task_id))
    for t, n in rejects:
        out.setdefault(t, {})["rejected"] = n
    return out


def my_roles(task: TaskRow, user: str, ws_roles: tuple[str, ...] | list[str]) -> list[str]:
    from pai_lab.workspaces.permissions import grant_for

    people = task.people or {}
    roles = [r for r, key in (("labeler", "labelers"), ("checker", "checkers"), ("acceptor", "acceptors"))
             if user in people.get(key, [])]
    if user in people.get("admins", []) or grant_for(list(ws_roles), "label.manage") == "all":
        roles.append("admin")
    return roles


def _task_schema(s: Session, task: TaskRow, user: str, ws_roles, counts: dict | None = None) -> sc.Task:
    c = counts if counts is not None else _counts(s, [task.id]).get(task.id, {})
    packages = c.get("packages", {})
    state = fl.INITIALIZING if not task.initialized else fl.task_state(task.flow, set(packages), task.offline)
    return sc.Task(
        id=task.id, name=task.name, template=task.template, state=state, total=task.total,
        labeled=c.get("labeled", 0), checked=c.get("checked", 0), accepted=c.get("accepted", 0),
        rejected=c.get("rejected", 0), skipped=c.get("skipped", 0),
        packages_left=sum(n for st, n in packages.items() if st != fl.DONE),
        my_roles=my_roles(task, user, ws_roles), description=task.description, flow=task.flow,
        labels=[sc.LabelSpec(**l) for l in task.labels], multi=task.multi, check_ratio=task.check_ratio,
        package_size=task.package_size, package_by=task.package_by, people=task.people, dataset=task.dataset,
        dataset_version=task.dataset_version, spec=task.spec, created_by=task.created_by, created_at=task.created_at)


def list_tasks(s: Session, user: str, ws: str) -> list[sc.Task]:
    access = authorize(s, user, ws, "label.read")
    rows = s.scalars(select(TaskRow).where(TaskRow.workspace_id == access.workspace_id)
                     .order_by(TaskRow.created_at.desc(), TaskRow.name)).all()
    counts = _counts(s, [r.id for r in rows]) if rows else {}
    return [_task_schema(s, r, user, access.roles, counts.get(r.id, {})) for r in rows]


def get_task(s: Session, user: str, ws: str, ref: str) -> sc.Task:
    access = authorize(s, user, ws, "label.read")
    return _task_schema(s, _find(s, access.workspace_id, ref), user, access.roles)


def task_row(s: Session, user: str, ws: str, ref: str, action: str = "label.read") -> TaskRow:
    access = authorize(s, user, ws, action)
    return _find(s, access.workspace_id, ref)


def _manage(s: Session, user: str, ws: str, ref: str):
    access = authorize(s, user, ws, "label.manage")
    return access, _find(s, access.workspace_id, ref)


def delete_task(s: Session, user: str, ws: str, ref: str) -> None:
    _, task = _manage(s, user, ws, ref)
    s.delete(task)
    s.flush()


def set_offline(s: Session, user: str, ws: str, ref: str, offline: bool) -> sc.Task:
    access, task = _manage(s, user, ws, ref)
    task.offline = offline
    s.flush()
    return _task_schema(s, task, user, access.roles)


def set_people(s: Session, user: str, ws: str, ref: str, body: sc.TaskPeople) -> sc.Task:
    access, task = _manage(s, user, ws, ref)
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
    return _task_schema(s, task, user, access.roles)


def copy_task(s: Session, user: str, ws: str, ref: str, name: str) -> sc.Task:
    access, src = _manage(s, user, ws, ref)
    body = sc.TaskCreate(name=name, template=src.template, description=src.description, labels=[
        sc.LabelSpec(**l) for l in src.labels], multi=src.multi, flow=src.flow, check_ratio=src.check_ratio,
        package_size=src.package_size, package_by=src.package_by, dataset=src.dataset,
        dataset_version=src.dataset_version, **{k: v for k, v in src.people.items()})
    rows = s.execute(select(ItemRow.data).where(ItemRow.task_id == src.id).order_by(ItemRow.seq).execution_options(
        yield_per=2000)).scalars()
    items = [NewItem(json.loads(d)) for d in rows]
    out = create_task(s, user, ws, body.model_copy(update={"template": src.template}), items=items,
                      source="copy")
    # the copy keeps the source's template as it was, even if a custom template changed since
    s.execute(update(TaskRow).where(TaskRow.id == out.id).values(spec=src.spec))
    return get_task(s, user, ws, out.id)


# ---------------------------------------------------------------------------- packages


def _work(s: Session, user: str, ws: str, ref: str, stage: str, task: TaskRow | None = None,
          access: Any = None) -> tuple[Any, TaskRow]:
    """Access for doing ``stage`` on a task: everyone with label.work, roles that only have
    it for assigned tasks only when they are named for that stage."""
    if access is None:
        access = authorize(s, user, ws, "label.read")
    if task is None:
        task = _find(s, access.workspace_id, ref)
    if stage not in fl.stages(task.flow):
        raise BadInput(f"task {task.name!r} has no {stage} stage (its flow is {task.flow})", "stage")
    assigned = user in task.people.get(ROLE_LISTS[stage], [])
    access = access.require("label.work", assigned=assigned)
    if task.offline:
        raise Conflict(f"task {task.name!r} is offline; an admin brings it back with `pai label online`", "task")
    return access, task


def _is_admin(s: Session, user: str, ws: str, task: TaskRow) -> bool:
    access = authorize(s, user, ws, "label.read")
    return "admin" in my_roles(task, user, access.roles)


def _package_schema(s: Session, task: TaskRow, pkg: PackageRow) -> sc.Package:
    stage = fl.STAGE_OF.get(pkg.state)
    col = getattr(ItemRow, STAGE_COLUMN[stage]) if stage else None
    done = pkg.size
    if col is not None:
        cond = col.is_not(None)
        if stage == "label":
            cond = cond | ItemRow.skipped.is_not(None)
        elif stage == "check":
            cond = cond | (ItemRow.sampled.is_(False)) | ItemRow.skipped.is_not(None)
        else:
            cond = cond | ItemRow.skipped.is_not(None)
        done = s.scalar(select(func.count()).select_from(ItemRow).where(ItemRow.package_id == pkg.id, cond)) or 0
    return sc.Package(number=pkg.number, key=pkg.key, size=pkg.size, state=pkg.state, holder=pkg.holder,
                      labeler=pkg.labeler, rework=pkg.rework, comment=pkg.comment, done=done,
                      actions=fl.allowed_actions(task.flow, pkg.state))


def list_packages(s: Session, user: str, ws: str, ref: str, state: str | None = None) -> list[sc.Package]:
    task = task_row(s, user, ws, ref)
    q = select(PackageRow).where(PackageRow.task_id == task.id)
    if state:
        if state not in fl.PACKAGE_STATES:
            raise BadInput(f"unknown package state {state!r}; states are {', '.join(fl.PACKAGE_STATES)}", "state")
        q = q.where(PackageRow.state == state)
    return [_package_schema(s, task, p) for p in s.scalars(q.order_by(PackageRow.number))]


def _package(s: Session, task: TaskRow, number: int) -> PackageRow:
    pkg = s.scalar(select(PackageRow).where(PackageRow.task_id == task.id, PackageRow.number == number))
    if pkg is None:
        raise NotFound(f"task {task.name!r} has no package {number}", "package")
    return pkg


def _event(s: Session, task: TaskRow, pkg: PackageRow, action: str, old: str, actor: str, comment: str = "") -> None:
    s.add(PackageEventRow(task_id=task.id, package_id=pkg.id, action=action, from_state=old, to_state=pkg.state,
                          actor=actor, comment=comment, at=utcnow()))


def claim(s: Session, user: str, ws: str, ref: str, stage: str = "label") -> sc.Package | None:
    """The package the caller holds in ``stage``, or the next one from the pool (None: pool empty)."""
    _, task = _work(s, user, ws, ref, stage)
    held = s.scalar(select(PackageRow).where(PackageRow.task_id == task.id, PackageRow.holder == user,
                                             PackageRow.state == fl.WORKING[stage]).order_by(PackageRow.number))
    if held is not None:
        return _package_schema(s, task, held)
    while True:
        pkg = s.scalar(select(PackageRow).where(PackageRow.task_id == task.id, PackageRow.state == fl.POOL[stage])
                       .order_by(PackageRow.number).limit(1))
        if pkg is None:
            return None
        # a conditional update: two people grabbing at once cannot both get it
        won = s.execute(update(PackageRow).where(PackageRow.id == pkg.id, PackageRow.state == fl.POOL[stage])
                        .values(state=fl.WORKING[stage], holder=user, updated_at=utcnow())).rowcount
        if won:
            s.refresh(pkg)
            _event(s, task, pkg, "claim", fl.POOL[stage], user)
            return _package_schema(s, task, pkg)


def _held(s: Session, user: str, ws: str, ref: str, number: int, stage: str | None = None, *,
          task: TaskRow | None = None, pkg: PackageRow | None = None, access: Any = None):
    if access is None:
        access = authorize(s, user, ws, "label.read")
    if task is None:
        task = _find(s, access.workspace_id, ref)
    pkg = pkg or _package(s, task, number)
    stage = stage or fl.STAGE_OF.get(pkg.state)
    if stage is None:
        raise Conflict(f"package {number} is finished; nothing can be changed in it", "package")
    _work(s, user, ws, ref, stage, task, access)
    if pkg.state != fl.WORKING[stage] or pkg.holder != user:
        who = f"held by {pkg.holder}" if pkg.holder else pkg.state.replace("_", " ")
        raise Conflict(f"you do not hold package {number} in the {stage} stage (it is {who}); claim a package "
                       "first", "package")
    return task, pkg, stage


def package_items(s: Session, user: str, ws: str, ref: str, number: int) -> list[sc.Item]:
    access = authorize(s, user, ws, "label.read")
    task = _find(s, access.workspace_id, ref)
    pkg = _package(s, task, number)
    if pkg.holder != user and not my_roles(task, user, access.roles):
        raise Forbidden(f"'{user}' is not on task {task.name!r}; its admins add people with `pai label people`",
                        "task")
    rows = s.scalars(select(ItemRow).where(ItemRow.package_id == pkg.id).order_by(ItemRow.seq)).all()
    return [_item_schema(r, pkg.number) for r in rows]


def _item_schema(r: ItemRow, package: int) -> sc.Item:
    load = lambda t: json.loads(t) if t is not None else None  # noqa: E731
    origins = {stage: o for stage, col in ORIGIN_COLUMN.items() if (o := getattr(r, col)) is not None}
    return sc.Item(seq=r.seq, package=package, data=json.loads(r.data), sampled=r.sampled, skipped=r.skipped,
                   label=load(r.label), check=load(r.check), verify=load(r.verify), prelabel=load(r.prelabel),
                   prelabel_source=r.prelabel_source, prelabel_score=r.prelabel_score,
                   prelabel_scores=load(r.prelabel_scores), origins=origins, revision=r.revision)


def list_items(s: Session, user: str, ws: str, ref: str, offset: int = 0, limit: int = 100) -> list[sc.Item]:
    task = task_row(s, user, ws, ref)
    rows = s.execute(select(ItemRow, PackageRow.number).join(PackageRow, PackageRow.id == ItemRow.package_id)
                     .where(ItemRow.task_id == task.id).order_by(ItemRow.seq).offset(offset).limit(limit)).all()
    return [_item_schema(r, n) for r, n in rows]


def item_history(s: Session, user: str, ws: str, ref: str, seq: int) -> list[sc.AnswerHistory]:
    task = task_row(s, user, ws, ref)
    item = _item(s, task, seq)
    rows = s.scalars(select(AnswerRow).where(AnswerRow.item_id == item.id).order_by(AnswerRow.id)).all()
    return [sc.AnswerHistory(id=a.id, stage=a.stage, revision=a.revision,
                             results=json.loads(a.results) if a.results is not None else None,
                             skip_reason=a.skip_reason, author=a.author, client_id=a.client_id,
                             created_at=a.created_at) for a in rows]


def _item(s: Session, task: TaskRow, seq: int) -> ItemRow:
    return _item_and_package(s, task, seq)[0]


def _item_and_package(s: Session, task: TaskRow, seq: int) -> tuple[ItemRow, PackageRow]:
    row = s.execute(select(ItemRow, PackageRow).join(PackageRow, PackageRow.id == ItemRow.package_id)
                    .where(ItemRow.task_id == task.id, ItemRow.seq == seq)).first()
    if row is None:
        raise NotFound(f"task {task.name!r} has no item {seq} (items are 0..{task.total - 1})", "item")
    return row[0], row[1]


_CHECKERS: dict[tuple, Checker] = {}


def _checker(task: TaskRow) -> Checker:
    """The task's template and labels are fixed when it is created: parse them once. (An id can
    come back after a delete, when a file is imported again; the creation time tells them apart.)"""
    key = (task.id, task.created_at)
    checker = _CHECKERS.get(key)
    if checker is None:
        if len(_CHECKERS) > 256:
            _CHECKERS.clear()
        checker = _CHECKERS[key] = Checker(TemplateSpec.model_validate(task.spec),
                                               [l["name"] for l in task.labels])
    return checker


def _ack(a: AnswerRow, seq: int, duplicate: bool) -> sc.AnswerAck:
    return sc.AnswerAck(id=a.id, item=seq, stage=a.stage, revision=a.revision, client_id=a.client_id,
                        author=a.author, created_at=a.created_at, duplicate=duplicate)


def submit_answer(s: Session, user: str, ws: str, ref: str, body: sc.AnswerSubmit) -> sc.AnswerAck:
    """Store one item's answer in one transaction; a retry with the same client_id stores nothing."""
    access = authorize(s, user, ws, "label.read")
    task = _find(s, access.workspace_id, ref)
    if body.client_id:
        old = s.scalar(select(AnswerRow).where(AnswerRow.task_id == task.id, AnswerRow.client_id == body.client_id))
        if old is not None:
            seq = s.scalar(select(ItemRow.seq).where(ItemRow.id == old.item_id))
            if seq != body.item:
                raise Conflict(f"client_id {body.client_id!r} was already used for item {seq}; use a new id per "
                               "answer", "client_id")
            return _ack(old, seq, True)
    item, pkg = _item_and_package(s, task, body.item)
    task, pkg, stage = _held(s, user, ws, ref, pkg.number, body.stage, task=task, pkg=pkg, access=access)
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
        checker = _checker(task)
        if body.results is not None and body.answer is not None:
            raise BadInput("give results or answer, not both", "answer")
        if body.results is None and body.answer is None:
            raise BadInput("give the answer: results=[...] (iTAG shape) or answer=..., or skip=<reason>", "answer")
        results = body.results if body.results is not None else checker.build(body.answer, data)
        text = dumps(checker.normalize(results, data, strict=True))
    item.revision += 1
    setattr(item, STAGE_COLUMN[stage], text)
    # whether the answer kept the suggestion it was shown, as the answer is given
    where_from = sg.origin(text, item.prelabel)
    setattr(item, ORIGIN_COLUMN[stage], where_from)
    if stage == "label":
        item.skipped = body.skip
    row = AnswerRow(task_id=task.id, item_id=item.id, stage=stage, revision=item.revision, results=text,
                    skip_reason=body.skip, client_id=body.client_id, origin=where_from, author=user,
                    created_at=utcnow())
    s.add(row)
    s.flush()
    return _ack(row, body.item, False)


def submit_package(s: Session, user: str, ws: str, ref: str, number: int) -> sc.Package:
    task, pkg, stage = _held(s, user, ws, ref, number, "label")
    missing = s.scalars(select(ItemRow.seq).where(ItemRow.package_id == pkg.id, ItemRow.label.is_(None),
                                                  ItemRow.skipped.is_(None)).order_by(ItemRow.seq)).all()
    if missing:
        shown = ", ".join(map(str, missing[:10])) + (" ..." if len(missing) > 10 else "")
        raise Conflict(f"{len(missing)} item(s) of package {number} have no answer yet (items {shown}); answer "
                       "or skip them, then submit", "package")
    old = pkg.state
    pkg.state = fl.move(task.flow, old, "submit")
    pkg.labeler, pkg.holder, pkg.updated_at = user, None, utcnow()
    _event(s, task, pkg, "submit", old, user)
    s.flush()
    return _package_schema(s, task, pkg)


def review(s: Session, user: str, ws: str, ref: str, number: int, verdict: str, comment: str = "") -> sc.Package:
    """A checker's or acceptor's pass or reject of the package they hold."""
    access = authorize(s, user, ws, "label.read")
    task = _find(s, access.workspace_id, ref)
    pkg = _package(s, task, number)
    stage = fl.STAGE_OF.get(pkg.state)
    if stage not in ("check", "accept"):
        raise Conflict(f"package {number} is {pkg.state.replace('_', ' ')}; only a package being checked or "
                       f"accepted can be {'passed' if verdict == 'pass' else 'rejected'}", "state")
    task, pkg, stage = _held(s, user, ws, ref, number, stage, task=task, pkg=pkg, access=access)
    old = pkg.state
    pkg.state = fl.move(task.flow, old, verdict)
    now = utcnow()
    col = STAGE_COLUMN[stage]
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
            setattr(item, ORIGIN_COLUMN[stage], kept)
            s.add(AnswerRow(task_id=task.id, item_id=item.id, stage=stage, revision=item.revision, results=source,
                            origin=kept, author=user, created_at=now))
        pkg.holder = None
    else:
        if not comment.strip():
            raise BadInput("a rejection needs a comment telling the labeler what to fix", "comment")
        pkg.rework += 1
        pkg.comment = comment
        pkg.holder = pkg.labeler
        # the reviewed answers are for the old labels; the history keeps them
        s.execute(update(ItemRow).where(ItemRow.package_id == pkg.id).values(
            check=None, verify=None, check_origin=None, verify_origin=None))
    pkg.updated_at = now
    _event(s, task, pkg, verdict, old, user, comment)
    s.flush()
    return _package_schema(s, task, pkg)


def release(s: Session, user: str, ws: str, ref: str, number: int) -> sc.Package:
    access = authorize(s, user, ws, "label.read")
    task = _find(s, access.workspace_id, ref)
    pkg = _package(s, task, number)
    if pkg.holder != user and not _is_admin(s, user, ws, task):
        raise Forbidden(f"only the holder of package {number} or a task admin may release it", "package")
    old = pkg.state
    pkg.state = fl.move(task.flow, old, "release")
    pkg.holder, pkg.updated_at = None, utcnow()
    _event(s, task, pkg, "release", old, user)
    s.flush()
    return _package_schema(s, task, pkg)


def reassign(s: Session, user: str, ws: str, ref: str, number: int, to: str) -> sc.Package:
    access = authorize(s, user, ws, "label.read")
    task = _find(s, access.workspace_id, ref)
    if not _is_admin(s, user, ws, task):
        raise Forbidden(f"only a task admin may reassign packages of {task.name!r}", "package")
    pkg = _package(s, task, number)
    stage = fl.STAGE_OF.get(pkg.state)
    if stage and to not in task.people.get(ROLE_LISTS[stage], []):
        raise BadInput(f"{to!r} is not a {ROLE_LISTS[stage][:-1]} of task {task.name!r}; add them to its "
                       f"{ROLE_LISTS[stage]} first", "to")
    old = pkg.state
    pkg.state = fl.move(task.flow, old, "reassign")
    pkg.holder, pkg.updated_at = to, utcnow()
    _event(s, task, pkg, "reassign", old, user, f"to {to}")
    s.flush()
    return _package_schema(s, task, pkg)


# ---------------------------------------------------------------------------- pre-labels


def attach_prelabels(s: Session, user: str, ws: str, ref: str, body: sc.PrelabelBatch) -> int:
    _, task = _manage(s, user, ws, ref)
    checker = Checker(TemplateSpec.model_validate(task.spec), [l["name"] for l in task.labels])
    for i, p in enumerate(body.items):
        item = _item(s, task, p.item)
        data = json.loads(item.data)
        results = p.results if p.results is not None else checker.build(p.answer, data)
        item.prelabel = dumps(_normalize(checker, results, data, f"items[{i}] (item {p.item})", strict=False))
        item.prelabel_source = body.source
        sg.check_scores(p.score, p.scores, f"items[{i}]")
        item.prelabel_score = p.score
        item.prelabel_scores = dumps(p.scores) if p.scores else None
    s.flush()
    return len(body.items)


# ---------------------------------------------------------------------------- statistics


def stats(s: Session, user: str, ws: str, ref: str) -> sc.TaskStats:
    access = authorize(s, user, ws, "label.read")
    task = _find(s, access.workspace_id, ref)
    t = _task_schema(s, task, user, access.roles)
    packages = {st: 0 for st in fl.PACKAGE_STATES}
    for st, n in s.execute(select(PackageRow.state, func.count()).where(PackageRow.task_id == task.id)
                           .group_by(PackageRow.state)):
        packages[st] = n
    people = []
    for author, stage, n, first, last in s.execute(
            select(AnswerRow.author, AnswerRow.stage, func.count(func.distinct(AnswerRow.item_id)),
                   func.min(AnswerRow.created_at), func.max(AnswerRow.created_at))
            .where(AnswerRow.task_id == task.id).group_by(AnswerRow.author, AnswerRow.stage)
            .order_by(AnswerRow.stage, AnswerRow.author)):
        hours = (last - first).total_seconds() / 3600 if first and last else 0
        people.append(sc.PersonStats(user=author, stage=stage, items=n, first=first, last=last,
                                     items_per_hour=round(n / hours, 1) if hours > 0 else None))
    # agreement: a checked item agrees when the checker left the labeler's answer as it was
    by_labeler: dict[str, list[int]] = {}
    rows = s.execute(select(PackageRow.labeler, ItemRow.label, ItemRow.check)
                     .join(PackageRow, PackageRow.id == ItemRow.package_id)
                     .where(ItemRow.task_id == task.id, ItemRow.check.is_not(None), ItemRow.label.is_not(None)))
    for labeler, label, check in rows:
        counts = by_labeler.setdefault(labeler or "", [0, 0])
        counts[0] += 1
        counts[1] += json.loads(label) == json.loads(check)
    total_checked = sum(c[0] for c in by_labeler.values())
    origins = dict(s.execute(select(ItemRow.label_origin, func.count()).where(
        ItemRow.task_id == task.id, ItemRow.label_origin.is_not(None)).group_by(ItemRow.label_origin)).all())
    suggested = s.scalar(select(func.count()).select_from(ItemRow).where(
        ItemRow.task_id == task.id, ItemRow.prelabel.is_not(None))) or 0
    return sc.TaskStats(
        suggested=suggested, suggestions_accepted=origins.get(sg.PREDICTION, 0),
        suggestions_changed=origins.get(sg.CHANGED, 0),
        total=t.total, labeled=t.labeled, checked=t.checked, accepted=t.accepted, rejected=t.rejected,
        skipped=t.skipped, packages=packages, packages_left=t.packages_left, people=people,
        agreement=(sum(c[1] for c in by_labeler.values()) / total_checked) if total_checked else None,
        by_labeler=[sc.LabelerAgreement(labeler=k, checked=v[0], agreed=v[1], accuracy=v[1] / v[0])
                    for k, v in sorted(by_labeler.items())])



# ---------------------------------------------------------------------------- uncertainty order


def order(s: Session, user: str, ws: str, ref: str, by: str, seed: int | None = None) -> sc.OrderResult:
    """Repack the items of the packages nobody has claimed or answered, so the next packages
    claimed hold the most uncertain suggestions first (unscored items last), or a random order.

    Those packages keep their numbers and sizes; only which items they hold changes."""
    _, task = _manage(s, user, ws, ref)
    if by not in sg.ORDERS:
        raise BadInput(f"unknown order {by!r}; orders are: {', '.join(sg.ORDERS)}", "by")
    if task.package_by:
        raise BadInput(f"task {task.name!r} is packaged by {task.package_by!r}; its packages keep their field "
                       "values and cannot be reordered", "by")
    claimed = select(PackageEventRow.package_id).where(PackageEventRow.task_id == task.id)
    answered = select(ItemRow.package_id).where(ItemRow.task_id == task.id, (ItemRow.label.is_not(None))
                                                | ItemRow.skipped.is_not(None))
    pkgs = s.scalars(select(PackageRow).where(
        PackageRow.task_id == task.id, PackageRow.state == fl.POOL["label"], PackageRow.rework == 0,
        PackageRow.id.not_in(claimed), PackageRow.id.not_in(answered)).order_by(PackageRow.number)).all()
    if not pkgs:
        return sc.OrderResult(by=by, packages=0, items=0, scored=0)
    # hold them: a claim racing this waits for it, or this fails and changes nothing
    held = s.execute(update(PackageRow).where(PackageRow.id.in_([p.id for p in pkgs]),
                                              PackageRow.state == fl.POOL["label"], PackageRow.holder.is_(None))
                     .values(updated_at=utcnow())).rowcount
    if held != len(pkgs):
        raise Conflict("a package was claimed while the task was being ordered; order it again", "by")
    rows = s.execute(select(ItemRow.id, ItemRow.seq, ItemRow.prelabel_score, ItemRow.prelabel_scores).where(
        ItemRow.package_id.in_([p.id for p in pkgs]))).all()
    if by == "random":
        ranked = sorted(rows, key=lambda r: r.seq)
        random.Random(seed).shuffle(ranked)
        scored = sum(r.prelabel_score is not None or r.prelabel_scores is not None for r in rows)
    else:
        keyed = [(sg.uncertainty(by, r.prelabel_score, json.loads(r.prelabel_scores) if r.prelabel_scores
                                 else None), r) for r in rows]
        scored = sum(u is not None for u, _ in keyed)
        # most uncertain first; unscored last; ties keep the items' order
        ranked = [r for _, r in sorted(keyed, key=lambda k: (k[0] is None, -(k[0] or 0.0), k[1].seq))]
    moves: list[dict] = []
    start = 0
    for pkg in pkgs:
        for r in ranked[start:start + pkg.size]:
            moves.append({"_id": r.id, "_pkg": pkg.id})
        start += pkg.size
    s.connection().execute(update(ItemRow.__table__).where(ItemRow.__table__.c.id == bindparam("_id"))
                           .values(package_id=bindparam("_pkg"), sampled=True), moves)
    if task.check_ratio < 1 and "check" in fl.stages(task.flow):
        _sample(s, task, list(pkgs))
    s.expire_all()
    return sc.OrderResult(by=by, packages=len(pkgs), items=len(rows), scored=scored)
