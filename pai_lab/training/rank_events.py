"""A job's rank events (ready, started, log lines, metrics, exit) handed to its supervisor as they arrive.

Every rank puts its events on the job's Dask queue. One reader thread per job waits on that queue with a
blocking get, which the scheduler answers the moment a rank puts something (a get with a timeout would be
logged by the scheduler as an error each time it ran out), and passes the items on through a local
queue. So the supervisor acts on a rank's exit at once, and asks the scheduler nothing while the job runs:
it used to look every 50 ms, a round trip through the scheduler's event loop each time, taken from the
cores the ranks train on.
"""

from __future__ import annotations

import queue as local
import threading
import time

CLOSE = "pai-close"  # put last by the supervisor: the reader forwards everything before it, then ends
_ENDED = object()


class RankEvents:
    """Reads ``events`` (a ``distributed.Queue``) in a thread of its own; :meth:`take` returns what came."""

    def __init__(self, events, name: str = "pai-rank-events"):
        self.events = events
        self.items: local.SimpleQueue = local.SimpleQueue()
        self.error: BaseException | None = None
        self.ended = False
        self.thread = threading.Thread(target=self._read, name=name, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        try:
            while True:
                batch = [self.events.get()]  # blocks until a rank puts an event
                batch += self.events.get(batch=True)  # and whatever came with it, in one round trip
                for item in batch:
                    if item[0] == CLOSE:
                        return
                    self.items.put(item)
        except BaseException as exc:  # noqa: BLE001 - the scheduler went away: the supervisor raises it
            self.error = exc
        finally:
            self.items.put(_ENDED)

    def take(self, wait: float = 0.0) -> list:
        """The events that came since the last call; when none has, waits up to ``wait`` s for the first.
        Raises what ended the reader when it failed and nothing is left to take."""
        out: list = []
        deadline = time.monotonic() + wait
        while not self.ended:
            try:
                left = deadline - time.monotonic()
                item = self.items.get(timeout=left) if not out and left > 0 else self.items.get_nowait()
            except local.Empty:
                break
            if item is _ENDED:
                self.ended = True
            else:
                out.append(item)
        if self.ended and not out and self.error is not None:
            raise RuntimeError(f"the job's event queue failed: {self.error!r}") from self.error
        return out

    def close(self, timeout: float = 5.0) -> None:
        """End the reader once it has passed on every event put before this call (idempotent)."""
        if self.thread.is_alive():
            try:
                self.events.put((CLOSE,))
            except Exception:  # noqa: BLE001 - a lost scheduler: the reader's get fails on its own
                return
            self.thread.join(timeout)
