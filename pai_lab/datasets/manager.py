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


class DatasetsManager:
    def __init__(self, platform):
        self.platform = platform
        self._progress: dict[tuple[str, str], ScanProgress] = {}
        self._lock = threading.Lock()
        self.thumb_dir = Path(platform.state_dir) / "cache" / "thumbnails"

    # ---------------------------------------------------------------- progress

    def start(self, workspace: str, name: str):
        """A progress callback for a scan of ``name``; clients poll :meth:`progress` meanwhile."""
        state = ScanProgress(dataset=name, running=True, items=0, bytes=0, started_at=utcnow())
        with self._lock:
            self._progress[(workspace, name)] = state

        def report(items: int, nbytes: int) -> None:
            state.items = items
            state.bytes = nbytes

        return report

    def finish(self, workspace: str, name: str, error: str | None = None) -> None:
        with self._lock:
            state = self._progress.get((workspace, name))
            if state is not None:
                state.running = False
                state.error = error
                state.finished_at = utcnow()

    def progress(self, workspace: str, name: str) -> ScanProgress:
        with self._lock:
            state = self._progress.get((workspace, name))
            return state.model_copy() if state else ScanProgress(dataset=name, running=False, items=0, bytes=0)

    # ---------------------------------------------------------------- thumbnails

    def forget(self, dataset_id: str) -> None:
        """Drop a deleted dataset's cached thumbnails."""
        import shutil

        shutil.rmtree(self.thumb_dir / dataset_id, ignore_errors=True)

    def thumbnail(self, dataset_id: str, key: str, stamp: str, source: str, storage_options: dict,
                  size: tuple[int, int] = THUMB_SIZE) -> bytes:
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
