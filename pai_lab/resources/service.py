"""Resource groups: which Dask cluster a workspace's jobs run on. No HTTP here.

``default`` is the training manager's own cluster (the embedded LocalCluster, or the scheduler it is
configured with). The operator (the server's owner) names more, in ``TrainingManager.resource_groups`` or
over REST; a workspace's Owner or an Administrator (``resource.manage``) chooses one of them."""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from pai_lab.errors import BadInput, Conflict, Forbidden, NotFound
from pai_lab.resources.schemas import GroupRank, ResourceGroup, ResourceGroupCreate, WorkspaceResourceGroup
from pai_lab.resources.tables import ResourceGroupRow, WorkspaceGroupRow
from pai_lab.store import utcnow
from pai_lab.workspaces import authorize

DEFAULT = "default"
_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,63}$")
_ADDRESS = re.compile(r"^(tcp|tls|ucx|ws|wss)://[A-Za-z0-9.\-\[\]:]+:\d{1,5}$")
ACTIVE_STATES = ("Queuing", "Running", "Stopping")


def _manager(platform):
    from pai_lab.training.manager import get_manager  # late: the manager builds on the job records

    return get_manager(platform)


def _known(session: Session, platform) -> dict[str, dict[str, Any]]:
    """Every group by name: its address ("" for the default group's own cluster) and where it comes from."""
    manager = _manager(platform)
    groups: dict[str, dict[str, Any]] = {DEFAULT: {"address": "", "source": "embedded"}}
    for name, value in dict(manager.resource_groups).items():  # an address, or a Dask Gateway's settings
        groups.setdefault(str(name), {"address": manager.group_address(str(name), value), "source": "configured"})
    for row in session.scalars(select(ResourceGroupRow).order_by(ResourceGroupRow.created_at)):
        groups.setdefault(
            row.name,
            {"address": row.scheduler_address, "source": "added", "by": row.created_by, "at": row.created_at},
        )
    return groups


def _operator_only(platform, user: str, what: str) -> None:
    if user != platform.owner:
        raise Forbidden(
            f"'{user}' may not {what}: resource groups are the server operator's ('{platform.owner}'); "
            "a workspace's Owner or Administrator chooses among them",
            "role",
        )


def add_group(session: Session, platform, user: str, body: ResourceGroupCreate) -> ResourceGroup:
    _operator_only(platform, user, "add a resource group")
    if not _NAME.match(body.name):
        raise BadInput(f"name {body.name!r}: use lower-case letters, digits, - and _ (starting with a letter)", "name")
    if not _ADDRESS.match(body.scheduler_address):
        raise BadInput(
            f"scheduler_address {body.scheduler_address!r}: give the Dask scheduler's address, "
            "for example tcp://10.0.0.5:8786",
            "scheduler_address",
        )
    if body.name in _known(session, platform):
        raise Conflict(f"resource group {body.name!r} exists; `pai eascmd resource ls` lists them", "name")
    session.add(ResourceGroupRow(name=body.name, scheduler_address=body.scheduler_address, created_by=user))
    session.flush()
    return describe(session, platform, user, body.name)


def remove_group(session: Session, platform, user: str, name: str) -> None:
    _operator_only(platform, user, "remove a resource group")
    row = session.get(ResourceGroupRow, name)
    if row is None:
        where = "configured in TrainingManager.resource_groups" if name in _known(session, platform) else "unknown"
        raise NotFound(f"resource group {name!r} was not added over the API ({where}); nothing removed", "name")
    users = session.scalars(select(WorkspaceGroupRow.workspace_id).where(WorkspaceGroupRow.resource_group == name))
    if list(users):
        raise Conflict(
            f"resource group {name!r} is a workspace's choice; move those workspaces to another group first", "name"
        )
    session.delete(row)


def group_of(session: Session, platform, workspace_id: str) -> tuple[str, str]:
    """The group a workspace's jobs run on and its scheduler address ("" the default group's cluster)."""
    row = session.get(WorkspaceGroupRow, workspace_id)
    name = row.resource_group if row is not None else DEFAULT
    known = _known(session, platform)
    if name not in known:  # the operator took it away: the workspace falls back to the default group
        return DEFAULT, ""
    return name, known[name]["address"]


def workspace_group(session: Session, user: str, workspace: str, platform) -> WorkspaceResourceGroup:
    access = authorize(session, user, workspace, "workspace.read")
    return WorkspaceResourceGroup(resource_group=group_of(session, platform, access.workspace_id)[0])


def assign(
    session: Session, platform, user: str, workspace: str, body: WorkspaceResourceGroup
) -> WorkspaceResourceGroup:
    """A workspace's Owner or Administrator chooses among the operator's groups; jobs submitted next run
    there, and its services' instances move there."""
    access = authorize(session, user, workspace, "resource.manage")
    known = _known(session, platform)
    if body.resource_group not in known:
        raise BadInput(
            f"resource_group {body.resource_group!r} is not a resource group of this server; "
            f"choose one of: {', '.join(known)} (`pai eascmd resource ls`)",
            "resource_group",
        )
    row = session.get(WorkspaceGroupRow, access.workspace_id)
    if row is None:
        session.add(
            WorkspaceGroupRow(workspace_id=access.workspace_id, resource_group=body.resource_group, created_by=user)
        )
    else:
        row.resource_group, row.created_by, row.created_at = body.resource_group, user, utcnow()
    session.flush()
    from pai_lab.serving.placement import follow_group  # its services' instances move with it

    follow_group(session, platform, access.workspace_id)
    return WorkspaceResourceGroup(resource_group=body.resource_group)


def list_groups(session: Session, platform, user: str) -> list[ResourceGroup]:
    """Every group; their schedulers are asked at once, so one that does not answer delays the list once."""
    from concurrent.futures import ThreadPoolExecutor

    groups = [_recorded(session, platform, user, name) for name in _known(session, platform)]
    with ThreadPoolExecutor(max_workers=min(8, len(groups))) as pool:
        return list(pool.map(lambda group: _live(platform, group), groups))


def describe(session: Session, platform, user: str, name: str) -> ResourceGroup:
    """One group: its workers as its scheduler reports them now, and the ranks of the caller's workspaces on them."""
    return _live(platform, _recorded(session, platform, user, name))


def _recorded(session: Session, platform, user: str, name: str) -> ResourceGroup:
    """What the store knows of a group: where it is, who uses it, the ranks placed on it."""
    from pai_lab.workspaces.tables import MemberRow, WorkspaceRow

    known = _known(session, platform)
    if name not in known:
        raise NotFound(f"resource group {name!r} does not exist; `pai eascmd resource ls` lists them", "resource")
    group = known[name]
    mine = dict(
        session.execute(
            select(WorkspaceRow.id, WorkspaceRow.name)
            .join(MemberRow, MemberRow.workspace_id == WorkspaceRow.id)
            .where(MemberRow.username == user)
        ).all()
    )
    chosen = dict(session.execute(select(WorkspaceGroupRow.workspace_id, WorkspaceGroupRow.resource_group)).all())
    return ResourceGroup(
        name=name,
        scheduler_address=group["address"],
        source=group["source"],
        status="ResourcePending",
        created_by=group.get("by", platform.owner),
        created_at=group.get("at"),
        workspaces=sorted(n for i, n in mine.items() if chosen.get(i, DEFAULT) == name),
        ranks=_ranks(session, mine, group["address"]),
    )


def _live(platform, info: ResourceGroup) -> ResourceGroup:
    """The group with its workers as its scheduler reports them now (no store access: runs off the session)."""
    try:
        cluster = _manager(platform).cluster_info(info.scheduler_address)
    except Exception as exc:  # noqa: BLE001 - an unreachable scheduler is this group's status, not an error
        info.status, info.message = "ResourceUnreachable", f"the scheduler does not answer: {exc}"[:500]
        return info
    info.scheduler_address = cluster.scheduler_address
    info.dashboard_link = cluster.dashboard_link
    info.workers = cluster.workers
    info.cores = sum(w.cores for w in cluster.workers)
    info.gpus = sum(w.gpus for w in cluster.workers)
    info.memory = sum(w.memory for w in cluster.workers)
    if cluster.workers:
        info.status, info.message = "ResourceReady", "Resource is ready"
    else:
        info.message = "no worker has joined the scheduler yet"
    return info


def _ranks(session: Session, workspaces: dict[str, str], address: str) -> list[GroupRank]:
    from pai_lab.training.tables import JobRow

    rows = session.scalars(
        select(JobRow).where(JobRow.state.in_(ACTIVE_STATES), JobRow.workspace_id.in_(list(workspaces)))
    )
    ranks = []
    for row in rows:
        if (row.launch or {}).get("scheduler_address", "") != address:
            continue
        for pod in row.pods or []:
            if pod.get("worker"):
                ranks.append(
                    GroupRank(
                        workspace=workspaces[row.workspace_id],
                        job_id=row.id,
                        pod=pod["name"],
                        state=pod.get("state", ""),
                        worker=pod["worker"],
                    )
                )
    return ranks
