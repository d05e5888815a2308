"""Job folders with no job: a submission makes ``<state>/jobs/<id>/`` (the code copy, the data snapshot, a
staged script) before its row is committed, so a control plane that dies between the two leaves a folder
no job owns, holding a member's code and data copies in the state folder for ever.

At start-up such folders are removed, but only when nothing could still own them: no job row of the store
names them (by id or by folder), they have not changed for :data:`GRACE_S` (a submission of another
control plane on the same root may be between the two steps right now), and no process on this machine
carries their id (``PAI_LAB_JOB_ID``). Anything under ``jobs/`` that is not a plain folder is left alone.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from pathlib import Path

log = logging.getLogger("pai_lab.training")

GRACE_S = 3600.0  # an hour: a submission takes seconds between its folder and its row


def _newest_change(folder: Path) -> float:
    """The latest mtime of the folder and its direct entries (a submission writes into it as it goes)."""
    newest = folder.stat().st_mtime
    try:
        with os.scandir(folder) as entries:
            for entry in entries:
                try:
                    newest = max(newest, entry.stat(follow_symlinks=False).st_mtime)
                except OSError:
                    continue
    except OSError:
        pass
    return newest


def orphan_folders(platform, now: float | None = None, grace: float = GRACE_S) -> list[Path]:
    """The job folders under the state folder that no job owns and that may go (see the module)."""
    from sqlalchemy import select

    from pai_lab.training.tables import JobRow

    jobs = Path(platform.state_dir) / "jobs"
    if not jobs.is_dir():
        return []
    now = time.time() if now is None else now
    candidates = []
    for entry in jobs.iterdir():
        if entry.is_symlink() or not entry.is_dir():
            continue
        try:
            if now - _newest_change(entry) < grace:
                continue
        except OSError:
            continue
        candidates.append(entry)
    if not candidates:
        return []
    with platform.store.transaction() as session:
        known = {job_id for (job_id,) in session.execute(select(JobRow.id))}
        known |= {Path(folder).name for (folder,) in session.execute(select(JobRow.work_dir)) if folder}
    orphans = [c for c in candidates if c.name not in known]
    if orphans:
        from pai_lab.training.isolation import job_processes

        running = set()
        for proc in job_processes(job_ids={o.name for o in orphans}):
            try:
                running.add(proc.environ().get("PAI_LAB_JOB_ID"))
            except Exception:  # noqa: BLE001 - it ended meanwhile; keep the folder anyway this time
                running.add(None)
        if None in running:
            return []
        orphans = [o for o in orphans if o.name not in running]
    return orphans


def remove_orphan_folders(platform) -> list[str]:
    """Remove the job folders no job owns (see the module); returns their names."""
    removed = []
    try:
        for folder in orphan_folders(platform):
            shutil.rmtree(folder, ignore_errors=True)  # links inside are removed, never followed
            removed.append(folder.name)
    except Exception:  # a tidy-up: the server runs without it
        log.warning("pai_lab: could not look for job folders without a job", exc_info=True)
    if removed:
        log.warning("pai_lab: removed %d job folder(s) no job owns: %s", len(removed), ", ".join(removed))
    return removed
