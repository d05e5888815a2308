"""Two requests moving one package at once, on SQLite and PostgreSQL: the second one to write finds the
package changed and gets a 409, so a package is moved once. The other request is made to commit just
before the first one's first write, the moment a real race would put it."""

from __future__ import annotations

import pytest
from sqlalchemy import event, select

from pai_lab.errors import Conflict
from pai_lab.labeling import schemas as sc
from pai_lab.labeling import service as sv
from pai_lab.labeling.tables import PackageEventRow, PackageRow
from pai_lab.platform import Platform

W = "default"


@pytest.fixture(params=["sqlite", "postgresql"])
def platform(request, tmp_path):
    url = None if request.param == "sqlite" else request.getfixturevalue("new_postgres_database")()
    platform = Platform(tmp_path / "root", url, owner="owner").start()
    with platform.store.transaction() as s:
        from pai_lab import workspaces

        workspaces.add_member(s, "owner", W, "lead", ["LabelingAdmin"])
    yield platform
    platform.store.dispose()


def _do(platform, fn, *args, **kw):
    with platform.store.transaction() as s:
        return fn(s, *args, **kw)


def a_labeled_package(platform) -> tuple[str, int]:
    """A task of two items in one package, claimed and answered by the owner, ready to submit."""
    task = _do(
        platform,
        sv.create_task,
        "owner",
        W,
        sc.TaskCreate(
            name="race",
            template="image-classification",
            labels=["cat"],
            package_size=2,
            lines=[{"data": {"source": f"{i}.jpg"}} for i in range(2)],
        ),
    ).id
    number = _do(platform, sv.claim, "owner", W, task, "label").number
    for item in (0, 1):
        _do(
            platform, sv.submit_answer, "owner", W, task, sc.AnswerSubmit(item=item, answer="cat", client_id=f"a{item}")
        )
    return task, number


def racing(platform, other):
    """Runs ``other()`` (in a transaction of its own) once, just before this request's first write."""
    ran = []

    def before_write(_conn, _cursor, statement, *_):
        if not ran and statement.lstrip().upper().startswith(("UPDATE", "INSERT")):
            ran.append(True)
            other()

    event.listen(platform.store.engine, "before_cursor_execute", before_write)
    return lambda: event.remove(platform.store.engine, "before_cursor_execute", before_write)


def events(platform, task: str) -> list[str]:
    with platform.store.transaction() as s:
        return list(
            s.scalars(
                select(PackageEventRow.action).where(PackageEventRow.task_id == task).order_by(PackageEventRow.id)
            )
        )


def test_a_package_submitted_twice_at_once_moves_once(platform):
    task, number = a_labeled_package(platform)
    stop = racing(platform, lambda: _do(platform, sv.submit_package, "owner", W, task, number))
    try:
        with pytest.raises(Conflict, match=f"package {number} changed meanwhile"):
            _do(platform, sv.submit_package, "owner", W, task, number)
    finally:
        stop()
    assert events(platform, task) == ["claim", "submit"]
    assert [p.state for p in _do(platform, sv.list_packages, "owner", W, task)] == ["done"]


def test_a_release_racing_a_submit_leaves_the_package_where_the_first_put_it(platform):
    task, number = a_labeled_package(platform)
    stop = racing(platform, lambda: _do(platform, sv.release, "lead", W, task, number))
    try:
        with pytest.raises(Conflict, match="changed meanwhile"):
            _do(platform, sv.submit_package, "owner", W, task, number)
    finally:
        stop()
    assert events(platform, task) == ["claim", "release"]
    with platform.store.transaction() as s:
        pkg = s.scalar(select(PackageRow).where(PackageRow.task_id == task))
        assert (pkg.state, pkg.holder, pkg.labeler) == ("label_pool", None, None)


def test_two_claims_of_one_person_at_once_get_the_same_package(platform):
    task = _do(
        platform,
        sv.create_task,
        "owner",
        W,
        sc.TaskCreate(
            name="tabs",
            template="image-classification",
            labels=["cat"],
            package_size=1,
            lines=[{"data": {"source": f"{i}.jpg"}} for i in range(3)],
        ),
    ).id
    other_tab = []
    stop = racing(platform, lambda: other_tab.append(_do(platform, sv.claim, "owner", W, task, "label")))
    try:
        this_tab = _do(platform, sv.claim, "owner", W, task, "label")
    finally:
        stop()
    assert this_tab.number == other_tab[0].number == 1
    packages = _do(platform, sv.list_packages, "owner", W, task)
    assert [(p.state, p.holder) for p in packages] == [
        ("labeling", "owner"),
        ("label_pool", None),
        ("label_pool", None),
    ]
    assert events(platform, task) == ["claim"]
