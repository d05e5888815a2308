"""The one permission matrix: which role may do what, in every area.

Each action maps a role to a grant:

- ``ALL``: may do it to anything in the workspace;
- ``OWN``: only to objects the member created (datasets, jobs, services);
- ``ASSIGNED``: only on labeling tasks the member is assigned to;
- ``TEST``: only on services marked as test services.

Roles are additive: a member with several roles gets the widest grant of any of them.
:func:`authorize` is the only place these rules are checked; every area calls it.
"""

from __future__ import annotations

from pai_lab.errors import Forbidden

OWNER = "Owner"
ADMIN = "Administrator"
DEVELOPER = "AlgorithmDeveloper"
OPS = "AlgorithmOps"
LABEL_ADMIN = "LabelingAdmin"
TEAM_LEAD = "LabelingTeamLead"
GUEST = "Guest"

ROLES: tuple[str, ...] = (OWNER, ADMIN, DEVELOPER, OPS, LABEL_ADMIN, TEAM_LEAD, GUEST)

ROLE_DESCRIPTIONS = {
    OWNER: "Created the workspace; every permission. Cannot be removed.",
    ADMIN: "Manages members, resources and every asset of the workspace.",
    DEVELOPER: "Registers data, develops and trains models, deploys test services.",
    OPS: "Deploys, releases, scales and monitors services; manages running jobs.",
    LABEL_ADMIN: "Creates, distributes, accepts and exports labeling tasks.",
    TEAM_LEAD: "iTAG team lead: assigns people and packages on labeling tasks and sees their statistics; labels "
    "or checks the stages they are named on; does not create, accept or export tasks.",
    GUEST: "Reads everything in the workspace, changes nothing.",
}

ALL, OWN, ASSIGNED, TEST = "all", "own", "assigned", "test"
_RANK = {TEST: 1, OWN: 1, ASSIGNED: 1, ALL: 2}

_EVERYONE = {r: ALL for r in ROLES}


def _grant(**by_role: str) -> dict[str, str]:
    names = {
        "owner": OWNER,
        "admin": ADMIN,
        "dev": DEVELOPER,
        "ops": OPS,
        "label_admin": LABEL_ADMIN,
        "team_lead": TEAM_LEAD,
        "guest": GUEST,
    }
    return {names[k]: v for k, v in by_role.items()}


# action -> {role: grant}. A role absent from an action's row may not do it.
MATRIX: dict[str, dict[str, str]] = {
    # workspace and members
    "workspace.read": dict(_EVERYONE),
    "workspace.update": _grant(owner=ALL, admin=ALL),
    "workspace.delete": _grant(owner=ALL),
    "member.read": dict(_EVERYONE),
    "member.manage": _grant(owner=ALL, admin=ALL),
    "oplog.read": _grant(owner=ALL, admin=ALL),
    "resource.manage": _grant(owner=ALL, admin=ALL),
    # datasets
    "dataset.read": dict(_EVERYONE),
    "dataset.create": _grant(owner=ALL, admin=ALL, dev=ALL, label_admin=ALL),
    "dataset.update": _grant(owner=ALL, admin=ALL, dev=OWN, label_admin=OWN),
    "dataset.delete": _grant(owner=ALL, admin=ALL, dev=OWN, label_admin=OWN),
    # labeling
    "label.read": dict(_EVERYONE),
    "label.manage": _grant(owner=ALL, admin=ALL, label_admin=ALL),
    # iTAG's team lead: hands tasks' stages and packages to people, without the admin console
    "label.assign": _grant(owner=ALL, admin=ALL, label_admin=ALL, team_lead=ALL),
    "label.work": _grant(owner=ALL, admin=ALL, label_admin=ALL, dev=ASSIGNED, ops=ASSIGNED, team_lead=ASSIGNED),
    # training
    "job.read": dict(_EVERYONE),
    "job.submit": _grant(owner=ALL, admin=ALL, dev=ALL, ops=ALL),
    "job.stop": _grant(owner=ALL, admin=ALL, dev=OWN, ops=ALL),
    "job.delete": _grant(owner=ALL, admin=ALL, dev=OWN, ops=ALL),
    # PAI's Algorithm O&M headline right: the order of the waiting queue
    "job.priority": _grant(owner=ALL, admin=ALL, ops=ALL),
    # models
    "model.read": dict(_EVERYONE),
    "model.register": _grant(owner=ALL, admin=ALL, dev=ALL, ops=ALL),
    "model.delete": _grant(owner=ALL, admin=ALL, dev=OWN),
    # serving
    "service.read": dict(_EVERYONE),
    "service.deploy": _grant(owner=ALL, admin=ALL, ops=ALL, dev=TEST),
    "service.manage": _grant(owner=ALL, admin=ALL, ops=ALL, dev=TEST),
    "service.monitor": _grant(owner=ALL, admin=ALL, ops=ALL, dev=ALL, guest=ALL),
    # pipelines (PAI's Pipeline Service: developers build and run them, ops manages running ones)
    "pipeline.read": dict(_EVERYONE),
    "pipeline.run": _grant(owner=ALL, admin=ALL, dev=ALL, ops=ALL),
    "pipeline.manage": _grant(owner=ALL, admin=ALL, dev=OWN, ops=ALL),
}

AREAS = {
    "workspace": [
        "workspace.read",
        "workspace.update",
        "workspace.delete",
        "member.read",
        "member.manage",
        "oplog.read",
        "resource.manage",
    ],
    "datasets": ["dataset.read", "dataset.create", "dataset.update", "dataset.delete"],
    "labeling": ["label.read", "label.manage", "label.assign", "label.work"],
    "training": ["job.read", "job.submit", "job.stop", "job.delete", "job.priority"],
    "models": ["model.read", "model.register", "model.delete"],
    "serving": ["service.read", "service.deploy", "service.manage", "service.monitor"],
    "pipelines": ["pipeline.read", "pipeline.run", "pipeline.manage"],
}


def grant_for(roles: list[str] | set[str], action: str) -> str | None:
    """The widest grant any of ``roles`` has for ``action`` (None: refused)."""
    row = MATRIX[action]
    grants = [row[r] for r in roles if r in row]
    return max(grants, key=_RANK.__getitem__) if grants else None


def check(
    username: str,
    roles: list[str] | None,
    workspace: str,
    action: str,
    *,
    owner: str | None = None,
    assigned: bool = False,
    test_service: bool = False,
) -> str:
    """Raise :class:`Forbidden` unless a member with ``roles`` may do ``action``.

    ``owner`` is the creator of the object acted on (for OWN grants), ``assigned`` whether the
    member is on the labeling task (ASSIGNED), ``test_service`` whether the service is a test one.
    Returns the grant that allowed it.
    """
    if action not in MATRIX:
        raise KeyError(f"unknown action {action!r}")
    if roles is None:
        raise Forbidden(
            f"'{username}' is not a member of workspace '{workspace}'; ask its Owner or an Administrator to add you",
            "workspace",
        )
    grant = grant_for(roles, action)
    allowed = (
        grant == ALL
        or (grant == OWN and owner is not None and owner == username)
        or (grant == ASSIGNED and assigned)
        or (grant == TEST and test_service)
    )
    if allowed and grant is not None:
        return grant
    needed = [r for r, g in MATRIX[action].items() if g == ALL]
    why = {
        OWN: " (your roles allow it only on objects you created)",
        ASSIGNED: " (your roles allow it only on tasks you are assigned to)",
        TEST: " (your roles allow it only on test services)",
    }.get(grant or "", "")
    raise Forbidden(
        f"'{username}' ({', '.join(roles) or 'no role'}) may not {action} in workspace '{workspace}'"
        f"{why}; it needs one of: {', '.join(needed)}",
        "role",
    )


def matrix_document() -> dict:
    """The matrix as served at ``GET /pai-lab/api/v1/roles``."""
    return {
        "roles": [{"name": r, "description": ROLE_DESCRIPTIONS[r]} for r in ROLES],
        "areas": AREAS,
        "grants": {
            "all": "anything in the workspace",
            "own": "only what the member created",
            "assigned": "only tasks the member is assigned to",
            "test": "only test services",
        },
        "matrix": {action: dict(row) for action, row in MATRIX.items()},
    }
