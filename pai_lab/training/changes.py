"""A job's state changes, heard by whoever waits on them in this process as soon as they are committed.

A follower (``pai dlc submit``, ``job.wait()``) long-polls the job's record until it has more state
changes than it has seen. Rather than read the record again every tenth of a second, the request waits
here: :func:`pai_lab.training.records.append_state` announces each change once its transaction commits,
and the request reads the record once more then. A change written by another control plane over the same
store is not heard here; the request still reads the record again every ``fallback`` seconds.
"""

from __future__ import annotations

import asyncio
import threading


class JobChanges:
    """Per job, a count of the state changes committed in this process and the requests waiting for the next."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[str, int] = {}
        self._waiters: dict[str, list[tuple[asyncio.AbstractEventLoop, asyncio.Future]]] = {}

    def count(self, job_id: str) -> int:
        """Take this before reading the record; :meth:`wait` with it returns at once if a change came since."""
        return self._counts.get(job_id, 0)

    def changed(self, job_id: str) -> None:
        with self._lock:
            self._counts[job_id] = self._counts.get(job_id, 0) + 1
            waiters = self._waiters.pop(job_id, [])
        for loop, future in waiters:
            try:
                loop.call_soon_threadsafe(_wake, future)
            except RuntimeError:  # that request's loop has closed
                pass

    def forget(self, job_id: str) -> None:
        """The job ended and its last change was heard: a later wait reads the record again at once."""
        with self._lock:
            if job_id not in self._waiters:
                self._counts.pop(job_id, None)

    async def wait(self, job_id: str, seen: int, timeout: float) -> bool:
        """Until a change after ``seen`` (True) or ``timeout`` seconds (False)."""
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        entry = (loop, future)
        with self._lock:
            if self._counts.get(job_id, 0) != seen:
                return True
            self._waiters.setdefault(job_id, []).append(entry)
        try:
            await asyncio.wait_for(future, max(0.0, timeout))
            return True
        except asyncio.TimeoutError:
            return False
        finally:
            with self._lock:
                waiting = self._waiters.get(job_id, [])
                if entry in waiting:
                    waiting.remove(entry)
                if not waiting:
                    self._waiters.pop(job_id, None)


def _wake(future: asyncio.Future) -> None:
    if not future.done():
        future.set_result(None)


JOB_CHANGES = JobChanges()
