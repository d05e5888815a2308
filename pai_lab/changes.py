"""State changes of a job or a pipeline run, heard by whoever waits on them in this process as soon as
they are committed.

A follower (``pai dlc submit``, ``job.wait()``, ``run.wait_for_completion()``) long-polls the record
until it has changed from what it has seen. Rather than read the record again every few milliseconds,
the request waits here: the one writer of the state (:func:`pai_lab.training.records.append_state` for a
job, the run's driver for a pipeline run) announces each change once its transaction commits, and the
request reads the record once more then. A change written by another control plane over the same store
is not heard here; the request still reads the record again once a second.
"""

from __future__ import annotations

import asyncio
import threading


class Changes:
    """Per job or run, a count of the state changes committed in this process and the requests waiting for the next."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[str, int] = {}
        self._waiters: dict[str, list[tuple[asyncio.AbstractEventLoop, asyncio.Future]]] = {}

    def count(self, key: str) -> int:
        """Take this before reading the record; :meth:`wait` with it returns at once if a change came since."""
        return self._counts.get(key, 0)

    def changed(self, key: str) -> None:
        with self._lock:
            self._counts[key] = self._counts.get(key, 0) + 1
            waiters = self._waiters.pop(key, [])
        for loop, future in waiters:
            try:
                loop.call_soon_threadsafe(_wake, future)
            except RuntimeError:  # that request's loop has closed
                pass

    def forget(self, key: str) -> None:
        """The job or run ended and its last change was heard: a later wait reads the record again at once."""
        with self._lock:
            if key not in self._waiters:
                self._counts.pop(key, None)

    async def wait(self, key: str, seen: int, timeout: float) -> bool:
        """Until a change after ``seen`` (True) or ``timeout`` seconds (False)."""
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        entry = (loop, future)
        with self._lock:
            if self._counts.get(key, 0) != seen:
                return True
            self._waiters.setdefault(key, []).append(entry)
        try:
            await asyncio.wait_for(future, max(0.0, timeout))
            return True
        except asyncio.TimeoutError:
            return False
        finally:
            with self._lock:
                waiting = self._waiters.get(key, [])
                if entry in waiting:
                    waiting.remove(entry)
                if not waiting:
                    self._waiters.pop(key, None)


def _wake(future: asyncio.Future) -> None:
    if not future.done():
        future.set_result(None)


JOB_CHANGES = Changes()  # keyed by job id
RUN_CHANGES = Changes()  # keyed by pipeline run id
