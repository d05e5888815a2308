"""One image-embedding build per task across every control plane over one store (a team's servers under
JupyterHub share the database and the team folder): the builder holds the task's lease, a row of
``label_embedding_builds`` naming it (host, process id, start time) with an expiry.

The lease is taken as packages are claimed, with a conditional update (or the insert of a free task's
row, which only one of two racing servers wins); its holder renews it while it reads and removes it when
the build ends, whatever its end. A holder killed mid-build leaves its row: the next server takes it at
once when the holder's process is seen gone (same host), else once it lapses; the rule is the one a
pipeline run's claim follows (:func:`pai_lab.supervision.lapsed`).
The others wait for the holder's saved embedding (in the shared cache folder) or for the lease to end.
"""

from __future__ import annotations

import logging
import threading
from datetime import timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError

from pai_lab.errors import NotFound
from pai_lab.labeling.packages import _changed
from pai_lab.labeling.tables import EmbeddingBuildRow, TaskRow
from pai_lab.store import utcnow
from pai_lab.supervision import LEASE_SECONDS, lapsed, this_claim

log = logging.getLogger("pai_lab")

RENEW_SECONDS = 10.0


def take(store, task_id: str, total: int) -> bool:
    """Whether this control plane now holds the task's lease (it was free, lapsed, its holder gone, or
    already this one's)."""
    now, mine = utcnow(), this_claim()
    until = now + timedelta(seconds=LEASE_SECONDS)
    try:
        with store.transaction() as s:
            row = s.get(EmbeddingBuildRow, task_id)
            if row is None:
                s.add(EmbeddingBuildRow(task_id=task_id, owner=mine, expires_at=until, read=0, total=total))
                s.flush()
                return True
            if row.owner != mine and not lapsed(row.owner, row.expires_at, now):
                return False
            # only as it was read: of two servers taking a lapsed lease at once, one changes the row
            taken = s.execute(
                update(EmbeddingBuildRow)
                .where(
                    EmbeddingBuildRow.task_id == task_id,
                    EmbeddingBuildRow.owner == row.owner,
                    EmbeddingBuildRow.expires_at == row.expires_at,
                )
                .values(owner=mine, expires_at=until, read=0, total=total)
                .execution_options(synchronize_session=False)
            )
            return _changed(taken) == 1
    except IntegrityError:  # another server inserted the row first, or the task is gone
        with store.transaction() as s:
            if s.get(TaskRow, task_id) is None:
                raise NotFound("the task was deleted while its order waited; nothing to order", "task") from None
        return False


def progress(store, task_id: str) -> tuple[int, int] | None:
    """(images read, of total) by the lease's holder; None when nobody holds it."""
    with store.transaction() as s:
        row = s.execute(
            select(EmbeddingBuildRow.read, EmbeddingBuildRow.total).where(EmbeddingBuildRow.task_id == task_id)
        ).first()
    return (int(row.read), int(row.total)) if row is not None else None


def renew(store, task_id: str, read: int) -> bool:
    """Push this holder's expiry on and note how far it got; False when the lease is no longer its own."""
    with store.transaction() as s:
        done = s.execute(
            update(EmbeddingBuildRow)
            .where(EmbeddingBuildRow.task_id == task_id, EmbeddingBuildRow.owner == this_claim())
            .values(expires_at=utcnow() + timedelta(seconds=LEASE_SECONDS), read=read)
            .execution_options(synchronize_session=False)
        )
        return _changed(done) == 1


def release(store, task_id: str) -> None:
    with store.transaction() as s:
        s.execute(
            delete(EmbeddingBuildRow)
            .where(EmbeddingBuildRow.task_id == task_id, EmbeddingBuildRow.owner == this_claim())
            .execution_options(synchronize_session=False)
        )


class Held:
    """The lease of a build under way here, renewed in the background until :meth:`end`."""

    def __init__(self, store, task_id: str, read):
        self.store, self.task_id, self._read = store, task_id, read
        self._ended = threading.Event()
        self._thread = threading.Thread(target=self._renew, name=f"embedding-lease-{task_id}", daemon=True)
        self._thread.start()

    def _renew(self) -> None:
        while not self._ended.wait(RENEW_SECONDS):
            try:
                renew(self.store, self.task_id, self._read())
            except Exception:  # noqa: BLE001 - a store that hiccups: the next renewal tries again
                continue

    def end(self) -> None:
        self._ended.set()
        self._thread.join(5)
        try:
            release(self.store, self.task_id)
        except Exception:  # the build's own end stands; an unreleased lease lapses by itself
            log.warning("could not release the embedding lease of task %s", self.task_id, exc_info=True)
