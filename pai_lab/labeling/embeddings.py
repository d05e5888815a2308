"""An embedding per image item, for the orders that look at the items (see :mod:`pai_lab.labeling.ordering`):
each image grey, 16x16 (bilinear), in [0, 1], then the principal components (20) of those pixels
over all the task's items.

Computed when an order first needs it, from the items' images as the labelers' views read them
(:data:`READERS` at a time, in the background and outside any store transaction), and kept per task (in
memory and under the server's cache folder): a task's items never change. One build per task, across the
servers that share the store too (:mod:`pai_lab.labeling.build_lease`): a server whose teammate's server
builds it waits for that build's file in the shared cache folder, and takes over if that server dies.
"""

from __future__ import annotations

import io
import json
import logging
import os
import tempfile
import threading
import zipfile
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pai_lab.errors import BadInput, NotFound, PaiError, Unavailable

SIDE = 16  # pixels a side
COMPONENTS = 20
MAX_ITEMS = 20_000  # an embedding is read from every item's image: bounded
KEPT_IN_MEMORY = 16  # tasks
READERS = 8  # images one build reads at once (an HTTP or S3 source may take seconds each)
MAX_BUILDS = 4  # tasks whose embedding is computed at once
RETRY_AFTER_SECONDS = 1  # a request told to retry waits again on arrival: the client need not wait long before it
POLL_SECONDS = 0.25  # how often a server waiting on another's build looks for its file and its lease

log = logging.getLogger("pai_lab")


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


@dataclass(frozen=True)
class Listing:
    """What a build reads, taken from the store in a short transaction: each item's image URI."""

    task_id: str
    task_name: str
    seqs: list[int]
    images: list[str | None]
    options: dict

    @property
    def key(self) -> str:
        return f"{self.task_id}-{len(self.seqs)}"


class Build:
    """One task's embedding being computed: how far it got, and its end (the embedding or the error)."""

    def __init__(self, total: int):
        self.total = total
        self.read = 0
        self.elsewhere = False  # another server over the store builds it; this one waits for its file
        self.done = threading.Event()
        self.result: dict[int, np.ndarray] | None = None
        self.error: PaiError | None = None


class Embeddings:
    """The embedding of each task's items: {seq: row}, computed once per task, in the background."""

    def __init__(self, platform):
        self.platform = platform
        self.folder = Path(platform.state_dir) / "cache" / "embeddings"
        self._memory: OrderedDict[str, dict[int, np.ndarray]] = OrderedDict()
        self._lock = threading.Lock()
        self._builds: dict[str, Build] = {}  # one build per task at a time
        self._failed: dict[str, PaiError] = {}  # a build's error, for the next request of that task
        self._closing = threading.Event()

    def _file(self, task_id: str, total: int) -> Path:
        return self.folder / f"{task_id}-{total}.npz"

    def listing(self, s, user: str, ws: str, ref: str) -> Listing:
        """The task's items and their images (in the caller's transaction), or the 400 that says why
        this task cannot be embedded."""
        from pai_lab.labeling.media import _item_sources
        from pai_lab.labeling.tables import ItemRow

        task, keys, options, rows = _item_sources(s, user, ws, ref, lambda q: q.order_by(ItemRow.seq))
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
        images = [json.loads(r.data).get(keys[0]) for r in rows]
        return Listing(task.id, task.name, [r.seq for r in rows], images, options)

    def of_listing(self, listing: Listing, wait: float) -> dict[int, np.ndarray]:
        """The embedding of ``listing``'s task, waiting at most ``wait`` seconds for it to be computed
        (outside any transaction); past that, :class:`~pai_lab.errors.Unavailable` (code ``computing``)
        while the build goes on, and the next call finds it further on or done."""
        key = listing.key
        with self._lock:
            if key in self._memory:
                self._memory.move_to_end(key)
                return self._memory[key]
            failed = self._failed.pop(key, None)
            if failed is not None:  # the build a request left behind failed: that request's answer
                raise failed
            build = self._builds.get(key)
            if build is None:
                if len(self._builds) >= MAX_BUILDS:
                    raise Unavailable(
                        f"the server is computing {len(self._builds)} other tasks' image embeddings, its most "
                        "at once; retry in a minute, or order by margin",
                        "by",
                        code="busy",
                        retry_after=60,
                    )
                build = self._builds[key] = Build(len(listing.seqs))
                threading.Thread(
                    target=self._build, args=(listing, build), name=f"embedding-{key}", daemon=True
                ).start()
        if not build.done.wait(max(0.0, wait)):
            where = ", by another server over this store" if build.elsewhere else ""
            raise Unavailable(
                f"computing the image embedding of task {listing.task_name!r} ({build.read:,} of "
                f"{build.total:,} images read{where}), retry",
                "by",
                code="computing",
                retry_after=RETRY_AFTER_SECONDS,
            )
        with self._lock:
            self._failed.pop(key, None)  # this request answers with it
        if build.error is not None:
            raise build.error
        assert build.result is not None
        return build.result

    def _build(self, listing: Listing, build: Build) -> None:
        key = listing.key
        try:
            path = self._file(listing.task_id, len(listing.seqs))
            found = self._saved(path) or self._built_once(listing, build, path)
            with self._lock:
                self._memory[key] = found
                while len(self._memory) > KEPT_IN_MEMORY:
                    self._memory.popitem(last=False)
            build.result = found
        except Exception as exc:  # whatever stops it is the answer of the requests that wait
            build.error = exc if isinstance(exc, PaiError) else PaiError(f"the image embedding failed: {exc}")
            if not isinstance(exc, PaiError):
                log.exception("the image embedding of task %s failed", listing.task_id)
            with self._lock:
                self._failed[key] = build.error
        finally:
            with self._lock:
                self._builds.pop(key, None)
            build.done.set()

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

    def _built_once(self, listing: Listing, build: Build, path: Path) -> dict[int, np.ndarray]:
        """Computed here once this server holds the task's lease; while another server holds it, its
        saved file (the team folder is shared) or, once its lease ends or lapses, this server's own build."""
        from pai_lab.labeling import build_lease

        store = self.platform.store
        while not self._closing.is_set():
            if build_lease.take(store, listing.task_id, build.total):
                build.elsewhere, build.read = False, 0
                held = build_lease.Held(store, listing.task_id, lambda: build.read)
                try:
                    found = self._saved(path)  # the holder before this one may have finished meanwhile
                    if found is not None:
                        return found
                    for left in self.folder.glob(f"{path.stem}.*.part.npz"):  # a killed holder's half-written file
                        left.unlink(missing_ok=True)
                    return self._compute(listing, build, path)
                finally:
                    held.end()
            found = self._saved(path)
            if found is not None:
                return found
            other = build_lease.progress(store, listing.task_id)
            if other is not None:
                build.elsewhere, build.read = True, other[0]
            self._closing.wait(POLL_SECONDS)
        raise Unavailable("the server is stopping; order again once it is back", "by")

    def _compute(self, listing: Listing, build: Build, path: Path) -> dict[int, np.ndarray]:
        counted = threading.Lock()

        def read(value) -> np.ndarray | None:
            vector = None if self._closing.is_set() else self._read(value, listing.options)
            with counted:
                build.read += 1
            return vector

        with ThreadPoolExecutor(max_workers=READERS, thread_name_prefix=f"embedding-{listing.task_id}") as pool:
            vectors = list(pool.map(read, listing.images))
        if self._closing.is_set():
            raise Unavailable("the server is stopping; order again once it is back", "by")
        matrix = embed(vectors)
        seqs = np.array(listing.seqs)
        self.folder.mkdir(parents=True, exist_ok=True)
        handle, partial = tempfile.mkstemp(dir=self.folder, prefix=f"{path.stem}.", suffix=".part.npz")
        with os.fdopen(handle, "wb") as out:
            np.savez(out, seqs=seqs, embedding=matrix)
        os.replace(partial, path)
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

    def close(self) -> None:
        """The server stops: builds under way read no more images and end."""
        self._closing.set()


def embeddings(platform) -> Embeddings:
    return platform.manager("labeling.embeddings", Embeddings)
