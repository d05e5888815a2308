"""An embedding per image item, for the orders that look at the items (see :mod:`pai_lab.labeling.ordering`):
each image grey, 16x16 (bilinear), in [0, 1], then the principal components (20) of those pixels
over all the task's items.

Computed when an order first needs it, from the items' images as the labelers' views read them,
and kept per task (in memory and under the server's cache folder): a task's items never change.
"""

from __future__ import annotations

import io
import json
import os
import tempfile
import threading
import zipfile
from collections import OrderedDict
from pathlib import Path

import numpy as np

from pai_lab.errors import BadInput, NotFound

SIDE = 16  # pixels a side
COMPONENTS = 20
MAX_ITEMS = 20_000  # an embedding is read from every item's image: bounded
KEPT_IN_MEMORY = 16  # tasks


def image_vector(image) -> np.ndarray:
    """A Pillow image -> SIDE * SIDE grey values in [0, 1]."""
    from PIL import Image

    grey = image.convert("L").resize((SIDE, SIDE), Image.Resampling.BILINEAR)
    return np.asarray(grey, dtype=np.float32).reshape(-1) / 255.0


def bytes_vector(body: bytes) -> np.ndarray:
    from PIL import Image

    with Image.open(io.BytesIO(body)) as image:
        return image_vector(image)


def principal_components(vectors: np.ndarray, components: int = COMPONENTS) -> np.ndarray:
    """Each row's coordinates along the ``components`` directions of largest variance (rows centred)."""
    centred = np.asarray(vectors, dtype=np.float64)
    centred = centred - centred.mean(axis=0)
    _, _, directions = np.linalg.svd(centred, full_matrices=False)
    out = centred @ directions[:components].T
    # fix each direction's sign (the largest coordinate positive): the same items give the same embedding
    signs = np.sign(out[np.abs(out).argmax(axis=0), np.arange(out.shape[1])])
    return (out * np.where(signs == 0, 1, signs)).astype(np.float32)


def embed(vectors: list[np.ndarray | None]) -> np.ndarray:
    """Pixel vectors (None: unreadable, placed at the mean) -> the embedding, one row each."""
    readable = [v for v in vectors if v is not None]
    if not readable:
        raise BadInput("none of the task's images could be read; check the items' image paths", "by")
    mean = np.mean(readable, axis=0)
    return principal_components(np.stack([mean if v is None else v for v in vectors]))


class Embeddings:
    """The embedding of each task's items: {seq: row}, computed once per task."""

    def __init__(self, platform):
        self.platform = platform
        self.folder = Path(platform.state_dir) / "cache" / "embeddings"
        self._memory: OrderedDict[str, dict[int, np.ndarray]] = OrderedDict()
        self._lock = threading.Lock()
        self._task_locks: dict[str, threading.Lock] = {}

    def _file(self, task_id: str, total: int) -> Path:
        return self.folder / f"{task_id}-{total}.npz"

    def of_task(self, s, user: str, ws: str, ref: str) -> dict[int, np.ndarray]:
        from pai_lab.labeling.media import _item_sources
        from pai_lab.labeling.tables import ItemRow

        task, keys, options, rows = _item_sources(s, user, ws, ref, lambda q: q.order_by(ItemRow.seq))
        key = f"{task.id}-{len(rows)}"
        with self._lock:
            if key in self._memory:
                self._memory.move_to_end(key)
                return self._memory[key]
        if not keys:
            raise BadInput(
                f"task {task.name!r} shows no image, and this order compares the items' images; "
                "use least_confidence, margin, entropy or random",
                "by",
            )
        if len(rows) > MAX_ITEMS:
            raise BadInput(
                f"task {task.name!r} has {len(rows):,} items; this order reads every item's image and takes "
                f"tasks of at most {MAX_ITEMS:,}; split the dataset, or use margin",
                "by",
            )
        with self._task_lock(key):  # two orders of one task at once compute it once
            found = self._saved(self._file(task.id, len(rows))) or self._compute(task.id, rows, keys, options)
        with self._lock:
            self._memory[key] = found
            while len(self._memory) > KEPT_IN_MEMORY:
                self._memory.popitem(last=False)
        return found

    def _task_lock(self, key: str) -> threading.Lock:
        with self._lock:
            return self._task_locks.setdefault(key, threading.Lock())

    def _saved(self, path: Path) -> dict[int, np.ndarray] | None:
        """The saved embedding; None when there is none, or it cannot be read (then it is made again)."""
        try:
            with np.load(path) as saved:
                return dict(zip(saved["seqs"].tolist(), saved["embedding"]))
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, zipfile.BadZipFile):
            path.unlink(missing_ok=True)
            return None

    def _compute(self, task_id: str, rows, keys, options: dict) -> dict[int, np.ndarray]:
        vectors = [self._read(json.loads(r.data).get(keys[0]), options) for r in rows]
        matrix = embed(vectors)
        seqs = np.array([r.seq for r in rows])
        self.folder.mkdir(parents=True, exist_ok=True)
        handle, partial = tempfile.mkstemp(dir=self.folder, suffix=".part.npz")
        with os.fdopen(handle, "wb") as out:
            np.savez(out, seqs=seqs, embedding=matrix)
        os.replace(partial, self._file(task_id, len(rows)))
        return dict(zip(seqs.tolist(), matrix))

    def _read(self, value, options: dict) -> np.ndarray | None:
        from PIL import UnidentifiedImageError

        from pai_lab.labeling.media import locate

        if not isinstance(value, str) or not value:
            return None
        try:
            body, _ = locate(self.platform, value, options).read()
            return bytes_vector(body)
        except (BadInput, NotFound, OSError, UnidentifiedImageError, ValueError):
            return None  # an unreadable image sits at the mean: it neither crowds nor empties a cluster


def embeddings(platform) -> Embeddings:
    return platform.manager("labeling.embeddings", Embeddings)
