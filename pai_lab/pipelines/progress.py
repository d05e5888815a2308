"""A batch's progress file: how the driver sees the steps of a batch start and end before the batch does.

A wide fan-out's ready steps go to Dask in batches, each run one step after another in the run's warm
runner (:func:`pai_lab.pipelines.executors.run_steps`). The runner appends a line to the batch's file
when a step starts and when it ends (with its result), one ``write`` each; the driver reads the lines
added since its last look. One file a batch, opened once by the runner: a step's start and end cost
two appends, not a file of their own each in its folder, and the driver reads one file a batch, not
one a step. The batch's Dask result stays the word on any step the file does not tell of.
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

CHUNK = 1 << 20


def progress_path(run_dir: Path, first: str, attempt: int) -> Path:
    """The file of the batch whose first step is ``first`` (a step's name never starts with a dot)."""
    return run_dir / f".progress-{first}-{attempt}"


class BatchProgress:
    """The driver's reader of one batch's file: the lines it has not read yet, each once."""

    def __init__(self, path: Path, names: dict[str, str], future: Any = None):
        self.path = path
        self.names = names  # node id -> step name
        self.future = future  # the batch's Dask future
        self.offset = 0

    def notes(self) -> Iterator[tuple[str, str, object]]:
        """(step, "started" | "result", what) for each whole line added since the last call. The file
        lies in the run's folder, which the run's steps may write: it is read only as a regular file of
        its own (never through a link), and a line that is not one of ours is passed over."""
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except OSError:
            return  # not yet written (or gone): the batch's result tells
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                return
            data = b""
            while True:
                chunk = os.pread(fd, CHUNK, self.offset + len(data))
                data += chunk
                if len(chunk) < CHUNK:
                    break
        finally:
            os.close(fd)
        whole = data.rfind(b"\n") + 1  # a line being written is read next time
        self.offset += whole
        for line in data[:whole].splitlines():
            try:
                note = json.loads(line)
            except ValueError:
                continue
            name = self.names.get(str(note.get("node"))) if isinstance(note, dict) else None
            if name is None:
                continue
            if "result" in note and _is_result(note["result"]):
                yield name, "result", note["result"]
            elif "started" in note:
                yield name, "started", note["started"]

    def remove(self) -> None:
        try:
            self.path.unlink(missing_ok=True)
        except OSError:
            pass


def _is_result(value: object) -> bool:
    return (
        isinstance(value, dict)
        and isinstance(value.get("outputs", {}), dict)
        and isinstance(value.get("error", ""), str)
        and isinstance(value.get("tail", []), list)
    )
