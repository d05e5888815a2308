"""The permission matrix: for each role, an allowed and a refused action in every area.

The expectations are written out by hand from the workspace notes (who may do what), so a
change to the matrix that breaks them shows up here.
"""

import pytest

from pai_lab.errors import Forbidden
from pai_lab.workspaces.permissions import MATRIX, ROLES, check

# role -> area -> (an action it may do, an action it may not do or None when it may do all)
EXPECTED = {
    "Owner": {
        "workspace": ("workspace.delete", None),
        "datasets": ("dataset.delete", None),
        "labeling": ("label.manage", None),
        "training": ("job.stop", None),
        "serving": ("service.deploy", None),
    },
    "Administrator": {
        "workspace": ("member.manage", "workspace.delete"),
        "datasets": ("dataset.delete", None),
        "labeling": ("label.manage", None),
        "training": ("job.submit", None),
        "serving": ("service.manage", None),
    },
    "AlgorithmDeveloper": {
        "workspace": ("workspace.read", "member.manage"),
        "datasets": ("dataset.create", None),
        "labeling": ("label.read", "label.manage"),
        "training": ("job.submit", None),
        "serving": ("service.read", "service.deploy"),
    },
    "AlgorithmOps": {
        "workspace": ("member.read", "workspace.update"),
        "datasets": ("dataset.read", "dataset.create"),
        "labeling": ("label.read", "label.manage"),
        "training": ("job.stop", "model.delete"),
        "serving": ("service.deploy", None),
    },
    "LabelingAdmin": {
        "workspace": ("workspace.read", "oplog.read"),
        "datasets": ("dataset.create", None),
        "labeling": ("label.manage", None),
        "training": ("job.read", "job.submit"),
        "serving": ("service.read", "service.deploy"),
    },
    "LabelingTeamLead": {
        "workspace": ("workspace.read", "member.manage"),
        "datasets": ("dataset.read", "dataset.create"),
        "labeling": ("label.assign", "label.manage"),
        "training": ("job.read", "job.submit"),
        "serving": ("service.read", "service.deploy"),
    },
    "Guest": {
        "workspace": ("member.read", "member.manage"),
        "datasets": ("dataset.read", "dataset.create"),
        "labeling": ("label.read", "label.work"),
        "training": ("job.read", "job.submit"),
        "serving": ("service.monitor", "service.deploy"),
    },
}


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("area", ["workspace", "datasets", "labeling", "training", "serving"])
def test_allowed_and_refused_per_role_and_area(role, area):
    allowed, refused = EXPECTED[role][area]
    assert check("u", [role], "ws", allowed, owner="someone_else") == "all"
    if refused:
        with pytest.raises(Forbidden) as err:
            check("u", [role], "ws", refused, owner="someone_else")
        assert refused in err.value.message and role in err.value.message


def test_job_priority_is_algorithm_ops_right():
    # PAI: "Algorithm O&M has permissions such as task-priority management"; the developer submits but
    # does not reorder the queue, nor do the labeling roles or a Guest
    for role in ("Owner", "Administrator", "AlgorithmOps"):
        assert check("u", [role], "ws", "job.priority") == "all"
    for role in ("AlgorithmDeveloper", "LabelingAdmin", "LabelingTeamLead", "Guest"):
        with pytest.raises(Forbidden) as err:
            check("u", [role], "ws", "job.priority", owner="u")
        assert "AlgorithmOps" in err.value.message


def test_team_lead_assigns_and_works_only_where_named():
    # iTAG: a team lead assigns people and packages, labels or checks what they are named on, and has no
    # admin console (no creating, accepting, exporting)
    assert check("tl", ["LabelingTeamLead"], "ws", "label.assign") == "all"
    assert check("tl", ["LabelingTeamLead"], "ws", "label.work", assigned=True) == "assigned"
    with pytest.raises(Forbidden):
        check("tl", ["LabelingTeamLead"], "ws", "label.work", assigned=False)
    with pytest.raises(Forbidden):
        check("tl", ["LabelingTeamLead"], "ws", "label.manage")
    for role in ("AlgorithmDeveloper", "AlgorithmOps", "Guest"):
        with pytest.raises(Forbidden):
            check("u", [role], "ws", "label.assign")


def test_roles_add_up():
    with pytest.raises(Forbidden):
        check("u", ["Guest"], "ws", "job.submit")
    assert check("u", ["Guest", "AlgorithmOps"], "ws", "job.submit") == "all"


def test_own_assigned_and_test_grants():
    # a developer deletes the datasets they made, not other people's
    assert check("dev", ["AlgorithmDeveloper"], "ws", "dataset.delete", owner="dev") == "own"
    with pytest.raises(Forbidden) as err:
        check("dev", ["AlgorithmDeveloper"], "ws", "dataset.delete", owner="alice")
    assert "objects you created" in err.value.message
    assert check("dev", ["AlgorithmDeveloper"], "ws", "label.work", assigned=True) == "assigned"
    with pytest.raises(Forbidden):
        check("dev", ["AlgorithmDeveloper"], "ws", "label.work", assigned=False)
    assert check("dev", ["AlgorithmDeveloper"], "ws", "service.deploy", test_service=True) == "test"


def test_non_member_is_told_how_to_get_in():
    with pytest.raises(Forbidden) as err:
        check("x", None, "ws", "workspace.read")
    assert "not a member" in err.value.message and "Owner" in err.value.message


def test_every_action_names_known_roles_and_grants():
    for action, row in MATRIX.items():
        assert set(row) <= set(ROLES), action
        assert set(row.values()) <= {"all", "own", "assigned", "test"}, action
        assert row.get("Owner") == "all", f"the Owner may do everything, {action} included"
