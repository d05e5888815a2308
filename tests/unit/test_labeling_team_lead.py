"""iTAG's team lead (LabelingTeamLead): assigns people and packages on a task and sees its statistics,
labels or checks where named, and cannot create, export or name admins; a Guest does none of it."""

from __future__ import annotations

import pytest

from pai_lab import workspaces
from pai_lab.errors import Forbidden
from pai_lab.labeling import schemas as sc
from pai_lab.labeling import service as sv

W = "default"


@pytest.fixture
def crew(label_platform):
    with label_platform.store.transaction() as s:
        existing = {m.username for m in workspaces.list_members(s, "owner", W)}
        for user, role in (
            ("tina", "LabelingTeamLead"),
            ("alice", "AlgorithmDeveloper"),
            ("dave", "AlgorithmDeveloper"),
            ("gina", "Guest"),
            ("lena", "LabelingAdmin"),
        ):
            if user not in existing:
                workspaces.add_member(s, "owner", W, user, [role])
    return label_platform.store


def _do(store, fn, *args, **kw):
    with store.transaction() as s:
        return fn(s, *args, **kw)


def _task(store):
    body = sc.TaskCreate(
        name="birds",
        template="image-classification",
        labels=["crow", "gull"],
        flow="label-check",
        lines=[{"data": {"source": f"img/{i}.jpg"}} for i in range(3)],
        package_size=3,
        labelers=["alice"],
        checkers=["lena"],
        admins=["lena"],
    )
    with store.transaction() as s:
        return sv.create_task(s, "lena", W, body).id


def test_team_lead_assigns_people_and_packages_and_reads_stats(crew):
    task = _task(crew)
    # no admin console: a team lead neither creates tasks nor names admins nor exports
    with pytest.raises(Forbidden, match=r"label\.manage"):
        _do(
            crew,
            sv.create_task,
            "tina",
            W,
            sc.TaskCreate(
                name="nope", template="image-classification", labels=["a"], lines=[{"data": {"source": "x.jpg"}}]
            ),
        )
    with pytest.raises(Forbidden, match="admins"):
        _do(crew, sv.set_people, "tina", W, task, sc.TaskPeople(admins=["tina"]))
    # assigns labelers, then hands a claimed package to another labeler
    _do(crew, sv.set_people, "tina", W, task, sc.TaskPeople(labelers=["alice", "dave"], checkers=["lena", "tina"]))
    _do(crew, sv.claim, "alice", W, task, "label")
    moved = _do(crew, sv.reassign, "tina", W, task, 1, "dave")
    assert (moved.holder, moved.state) == ("dave", "labeling")
    assert _do(crew, sv.release, "tina", W, task, 1).state == "label_pool"
    # sees the task's numbers
    stats = _do(crew, sv.stats, "tina", W, task)
    assert stats.total == 3 and stats.packages_left == 1
    # a Guest assigns nobody and hands on nothing
    with pytest.raises(Forbidden, match=r"label\.assign"):
        _do(crew, sv.set_people, "gina", W, task, sc.TaskPeople(labelers=["gina"]))
    _do(crew, sv.claim, "alice", W, task, "label")
    with pytest.raises(Forbidden, match="team lead"):
        _do(crew, sv.reassign, "gina", W, task, 1, "dave")
    # neither does a developer who labels on the task
    with pytest.raises(Forbidden):
        _do(crew, sv.set_people, "alice", W, task, sc.TaskPeople(labelers=["alice"]))
