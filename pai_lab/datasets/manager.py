"""The registry's long-lived server side: scan progress that clients poll, and cached thumbnails."""

from __future__ import annotations

import hashlib
import io
import os
import threading
from pathlib import Path

from pai_lab.datasets.schemas import ScanProgress
from pai_lab.store import utcnow

THUMB_SIZE = (128, 128)


class Scan:
    """One scan's progress: ``report(items, bytes)`` from the scanner, then ``finish`` or ``refused``."""

    def __init__(self, manager: DatasetsManager, key: tuple[str, str], state: ScanProgress):
        self._manager, self._key, self.state = manager, key, state
        self._shown = False
        self._before: ScanProgress | None = None

    def report(self, items: int, nbytes: int) -> None:
        self.state.items, self.state.bytes = items, nbytes
        if not self._shown:
            with self._manager._lock:
                self._before = self._manager._progress.get(self._key)
                self._manager._progress[self._key] = self.state
            self._shown = True

    def finish(self, error: str | None = None) -> None:
        self.report(self.state.items, self.state.bytes)
        with self._manager._lock:
            self.state.running = False
            self.state.error = error
            self.state.finished_at = utcnow()

    def refused(self) -> None:
        """The call was refused: what was shown before this scan is shown again."""
        with self._manager._lock:
            progress = self._manager._progress
            if self._shown and progress.get(self._key) is self.state:
                if self._before is None:
                    progress.pop(self._key, None)
                else:
                    progress[self._key] = self._before


class DatasetsManager:
    def __init__(self, platform):
        self.platform = platform
        self._progress: dict[tuple[str, str], ScanProgress] = {}
        self._lock = threading.Lock()
        self.thumb_dir = Path(platform.state_dir) / "cache" / "thumbnails"

    # ---------------------------------------------------------------- progress

    def start(self, workspace: str, name: str) -> Scan:
        """A scan of ``name``; clients poll :meth:`progress` meanwhile.

        The scan is recorded from its first report on: the domain reports only once it has checked the
        caller's role and request, so a refused call (403, 4xx) never shows in, nor replaces, the record
        others read (see :meth:`Scan.refused`)."""
        return Scan(
            self, (workspace, name), ScanProgress(dataset=name, running=True, items=0, bytes=0, started_at=utcnow())
        )

    def progress(self, workspace: str, name: str) -> ScanProgress:
        with self._lock:
            state = self._progress.get((workspace, name))
            return state.model_copy() if state else ScanProgress(dataset=name, running=False, items=0, bytes=0)

    # ---------------------------------------------------------------- thumbnails

    def forget(self, dataset_id: str) -> None:
        """Drop a deleted dataset's cached thumbnails."""
        import shutil

        shutil.rmtree(self.thumb_dir / dataset_id, ignore_errors=True)

    def thumbnail(
        self,
        dataset_id: str,
        key: str,
        stamp: str,
        source: str,
        storage_options: dict,
        size: tuple[int, int] = THUMB_SIZE,
    ) -> bytes:
        """A PNG thumbnail of an image item, made on first request and cached by (key, stamp)."""
        name = hashlib.sha1(f"{key}\0{stamp}\0{size}".encode("utf-8", "surrogateescape")).hexdigest()
        path = self.thumb_dir / dataset_id / name[:2] / f"{name}.png"
        if path.exists():
            return path.read_bytes()
        data = make_thumbnail(read_bytes(source, storage_options), size)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, path)
        return data


def read_bytes(source: str, storage_options: dict | None = None) -> bytes:
    import fsspec

    with fsspec.open(source, "rb", **(storage_options or {})) as fh:
        return fh.read()


def make_thumbnail(data: bytes, size: tuple[int, int] = THUMB_SIZE) -> bytes:
    from PIL import Image

    with Image.open(io.BytesIO(data)) as img:
        img.thumbnail(size)
        if img.mode not in ("RGB", "RGBA", "L", "LA"):
            img = img.convert("RGBA" if "A" in img.getbands() else "RGB")
        out = io.BytesIO()
        img.save(out, format="PNG")
        return out.getvalue()
