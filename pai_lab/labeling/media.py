"""Item media for the labelers: read from where the item points, images scaled to the view.

Most of the cost of showing a photo-sized image at the size of a view is decoding it (a 2 MB PNG
spends ~20 ms just inflating). So images are *prepared*: decoded once and kept as JPEG levels
(long side 512, 768 and 1024 px) in the server's state folder, keyed by the source's identity
(path, size and mtime; or an object's ETag), so a changed file is never shown stale. A view is
then a level sent as it is, or scaled from the nearest larger level in a few ms. Preparation runs
in the background (at low priority) for a new task's first items (``preview_prepare_items``,
1,000 by default) and for every package someone claims, in item order; a view asked before its
item is prepared decodes the original and keeps the level it needed. The folder is capped
(``preview_cache_bytes``, 2 GiB by default); the oldest files go first.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import mimetypes
import os
import queue
import stat
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import select

from pai_lab.errors import BadInput, NotFound
from pai_lab.labeling.images import bad_image, encode, fit_size, has_alpha, level_for, level_size, normalized, scaled
from pai_lab.schema import whole_number

log = logging.getLogger("pai_lab")

MAX_MEDIA_BYTES = 512 << 20  # larger files are refused with a message rather than read into memory
AHEAD = (512, 768, 1024)  # made in the background: the stage at 1x, zoomable (boxes) at 1x, and 2x screens
DEFAULT_CACHE_BYTES = 2 << 30
PREPARE_ON_CREATE = 1000  # items prepared when a task is created; later packages when claimed


@dataclass
class Media:
    body: bytes
    mime: str
    width: int | None = None  # images: the original's size, for drawing and exporting in image pixels
    height: int | None = None


# ------------------------------------------------------------------ where the bytes are


@dataclass
class Source:
    """One item's media: a checked local path, or an object in a bucket, or a URL."""

    uri: str
    path: Path | None = None  # local
    fs: Any = None  # an fsspec filesystem (s3 / oss); fsspec has no types
    key: str | None = None  # bucket/key on ``fs``
    endpoint: str = ""

    def identity(self) -> str | None:
        """A string that changes whenever the content does (None: not known, never cached)."""
        try:
            if self.path is not None:
                st = self.path.stat()
                return f"file:{self.path}:{st.st_size}:{st.st_mtime_ns}"
            if self.fs is not None:
                info = self.fs.info(self.key)
                tag = info.get("ETag") or info.get("LastModified")
                return f"object:{self.endpoint}:{self.key}:{info.get('size')}:{tag}" if tag else None
        except (OSError, ValueError):
            return None
        return None

    def read(self) -> tuple[bytes, str]:
        """The bytes and a name to guess the type from."""
        if self.path is not None:
            size = self.path.stat().st_size
            _check_size(self.uri, size)
            return self.path.read_bytes(), self.path.name
        if self.fs is not None:
            try:
                _check_size(self.uri, self.fs.size(self.key))
                with self.fs.open(self.key, "rb") as f:
                    return f.read(), self.key or self.uri
            except FileNotFoundError:
                raise NotFound(f"the object {self.uri} does not exist", "source") from None
        import requests

        resp = requests.get(self.uri, timeout=30, allow_redirects=False)  # a redirect could leave the allowed prefix
        if resp.status_code >= 400:
            raise NotFound(f"{self.uri} answered {resp.status_code}", "source")
        return resp.content, self.uri.rsplit("/", 1)[-1]


def _check_size(uri: str, size: int | None) -> None:
    if size and size > MAX_MEDIA_BYTES:
        raise BadInput(f"{uri} is {size >> 20} MiB; files over {MAX_MEDIA_BYTES >> 20} MiB are not shown", "source")


def locate(platform, uri: str, options: dict) -> Source:
    """Where ``uri`` is, as the server's containment policy lets it be read."""
    from pai_lab.datasets.sources import endpoint_of, filesystem, parse_object_uri
    from pai_lab.security.paths import Containment, scheme_of

    # the policy first (same answer for missing and existing files outside the roots), then existence
    where = Containment.from_platform(platform).readable(uri, "source", options=options)
    if isinstance(where, Path):
        if not where.exists():
            raise NotFound(f"the file {uri} does not exist (moved or deleted?)", "source")
        return Source(uri, path=where)
    if scheme_of(where) in ("http", "https"):
        return Source(where)
    location = parse_object_uri(uri, options)
    return Source(
        uri,
        fs=filesystem(location),
        key=f"{location.bucket}/{location.prefix}",
        endpoint=endpoint_of(location.options) or "",
    )


def guess_mime(name: str, body: bytes) -> str:
    mime = mimetypes.guess_type(name)[0]
    if mime:
        return mime
    for magic, kind in (
        (b"\x89PNG", "image/png"),
        (b"\xff\xd8", "image/jpeg"),
        (b"GIF8", "image/gif"),
        (b"RIFF", "audio/wav"),
        (b"ID3", "audio/mpeg"),
        (b"OggS", "audio/ogg"),
    ):
        if body.startswith(magic):
            return kind
    return "application/octet-stream"


# ------------------------------------------------------------------ prepared copies


class Previews:
    """Prepared levels of item images on disk, and the background worker that makes them."""

    def __init__(self, platform, folder: Path | None = None, cap_bytes: int | None = None):
        self.platform = platform
        self.folder = Path(folder or platform.state_dir / "cache" / "previews")
        setting = platform.settings.get("preview_cache_bytes")
        self.cap_bytes = int(
            cap_bytes if cap_bytes is not None else setting if setting is not None else DEFAULT_CACHE_BYTES
        )
        # one lock per stripe of keys: a view and the worker never decode the same image twice at once
        self._locks = [threading.Lock() for _ in range(64)]
        self._jobs: queue.Queue = queue.Queue()
        self._worker: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self._used: int | None = None
        self._used_lock = threading.Lock()
        self.closed = False
        self.counts = {"prepared": 0, "from_level": 0, "from_original": 0}

    # -- files

    def _key(self, identity: str) -> str:
        return hashlib.sha256(identity.encode()).hexdigest()

    def _file(self, key: str, suffix: str) -> Path:
        return self.folder / key[:2] / f"{key}{suffix}"

    def _meta(self, key: str) -> dict | None:
        try:
            return json.loads(self._file(key, ".json").read_text())
        except (OSError, ValueError):
            return None

    def _write(self, path: Path, data: bytes) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        part = path.with_name(f"{path.name}.{os.getpid()}-{threading.get_ident()}.part")
        part.write_bytes(data)
        os.replace(part, path)  # readers see the whole file or none
        self._grew(len(data))

    def _level_file(self, key: str, meta: dict, level: int) -> Path:
        return self._file(key, f"-{level}.{'png' if meta.get('alpha') else 'jpg'}")

    def _grew(self, size: int) -> None:
        with self._used_lock:
            if self._used is None:
                self._used = sum(size for _, size, _ in self._files())
            else:
                self._used += size
            over = self._used > self.cap_bytes
        if over:
            self._trim()

    def _files(self) -> list[tuple[float, int, Path]]:
        """(mtime, size, path) of the finished files (another thread or server may be removing some)."""
        found = []
        for p in self.folder.rglob("*"):
            if p.suffix == ".part":
                continue  # being written: its writer renames it in a moment
            try:
                st = p.stat()
            except OSError:
                continue
            if stat.S_ISREG(st.st_mode):
                found.append((st.st_mtime, st.st_size, p))
        return found

    def _trim(self) -> None:
        """Remove the oldest files until the folder is at 80% of its cap."""
        files = sorted(self._files())
        used = sum(size for _, size, _ in files)
        for _, size, p in files:
            if used <= self.cap_bytes * 0.8:
                break
            p.unlink(missing_ok=True)
            used -= size
        with self._used_lock:
            self._used = used

    # -- views

    def view(self, source: Source, view_w: int = 0, view_h: int = 0) -> Media:
        """One item's media; images are checked and scaled to fit the view."""
        identity = source.identity()
        if identity is None:
            return self._from_original(source, source.read(), view_w, view_h, None)
        key = self._key(identity)
        with self._locks[int(key[:4], 16) % len(self._locks)]:
            meta = self._meta(key)
            if meta is not None:
                made = self._from_level(key, meta, fit_size(meta["width"], meta["height"], view_w, view_h))
                if made is not None:
                    return made
            return self._from_original(source, source.read(), view_w, view_h, key, meta)

    def _from_level(self, key: str, meta: dict, target: tuple[int, int]) -> Media | None:
        from PIL import Image

        width, height = meta["width"], meta["height"]
        level = level_for(width, height, target)
        if level is None:
            return None
        try:
            data = self._level_file(key, meta, level).read_bytes()
        except OSError:
            return None
        self.counts["from_level"] += 1
        mime = "image/png" if meta.get("alpha") else "image/jpeg"
        if level_size(width, height, level) == target:
            return Media(data, mime, width, height)
        image = Image.open(io.BytesIO(data))
        image.draft(image.mode, target)  # JPEG: decode at a reduced scale when it can
        body, mime = encode(scaled(image, target), bool(meta.get("alpha")))
        return Media(body, mime, width, height)

    def _from_original(
        self,
        source: Source,
        read: tuple[bytes, str],
        view_w: int,
        view_h: int,
        key: str | None,
        meta: dict | None = None,
    ) -> Media:
        from PIL import Image

        body, name = read
        mime = guess_mime(name, body)
        if not mime.startswith("image/"):
            return Media(body, mime)
        self.counts["from_original"] += 1
        try:
            image = Image.open(io.BytesIO(body))
            size = image.size
            target = fit_size(*size, view_w, view_h)
            alpha = has_alpha(image)
            if target == size:
                if meta is None:
                    image.verify()  # a truncated or corrupt file fails here, not in the browser
                    if key is not None:
                        self._write_meta(key, size, alpha)
                return Media(body, mime, *size)
            # the level kept for later views near this size is cut from the same decode
            level = level_for(*size, target) if key is not None else None
            image.draft("RGB", level_size(*size, level) if level else target)  # JPEG: decode at a reduced scale
            image = normalized(image)
            image.load()
        except Exception as exc:  # noqa: BLE001 - PIL raises many kinds for damaged files
            raise bad_image(source.uri, exc) from None
        body, mime = encode(scaled(image, target), alpha)
        if key is not None:
            meta = self._write_meta(key, size, alpha) if meta is None else meta
            if level is not None:
                kept = (
                    body
                    if level_size(*size, level) == target
                    else encode(scaled(image, level_size(*size, level)), alpha)[0]
                )
                self._write(self._level_file(key, meta, level), kept)
        return Media(body, mime, *size)

    def _write_meta(self, key: str, size: tuple[int, int], alpha: bool) -> dict:
        meta = {"width": size[0], "height": size[1], "alpha": alpha}
        self._write(self._file(key, ".json"), json.dumps(meta).encode())
        return meta

    def prepare(self, source: Source) -> bool:
        """Make every level of one image that is missing (False: not an image, or not cacheable)."""
        from PIL import Image

        identity = source.identity()
        if identity is None:
            return False
        key = self._key(identity)
        with self._locks[int(key[:4], 16) % len(self._locks)]:
            meta = self._meta(key)
            if meta is not None:
                wanted = [lv for lv in AHEAD if lv < max(meta["width"], meta["height"])]
                if all(self._level_file(key, meta, lv).exists() for lv in wanted):
                    return True
            body, name = source.read()
            if not guess_mime(name, body).startswith("image/"):
                return False
            try:
                image = Image.open(io.BytesIO(body))
                size = image.size
                wanted = [lv for lv in AHEAD if lv < max(size)]
                alpha = has_alpha(image)
                image.draft("RGB", level_size(*size, wanted[-1]) if wanted else size)
                image = normalized(image)
                image.load()
            except Exception:  # noqa: BLE001 - a damaged file: its view will say so
                return False
            meta = meta or self._write_meta(key, size, alpha)
            # largest first, each cut from the one before: one decode of the original for all
            for level in reversed(wanted):
                image = scaled(image, level_size(*size, level))
                path = self._level_file(key, meta, level)
                if not path.exists():
                    self._write(path, encode(image, alpha)[0])
            self.counts["prepared"] += 1
            return True

    # -- background

    def schedule(self, job) -> None:
        """Run ``job(previews)`` on the worker thread, after the jobs before it."""
        if self.closed:
            return
        with self._start_lock:
            if self._worker is None or not self._worker.is_alive():
                self._worker = threading.Thread(target=self._work, name="pai-previews", daemon=True)
                self._worker.start()
        self._jobs.put(job)

    def idle(self, timeout: float | None = None) -> bool:
        """Wait until every scheduled job is done (for tests and the CLI)."""
        done = threading.Event()
        self.schedule(lambda _: done.set())
        return done.wait(timeout)

    def _work(self) -> None:
        if sys.platform.startswith("linux"):
            try:  # below the views people wait for; on Linux a thread has its own nice value
                os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)
            except OSError:
                pass
        while True:
            job = self._jobs.get()
            if job is None or self.closed:
                return
            try:
                job(self)
            except Exception:
                log.debug("pai_lab: preparing images failed", exc_info=True)

    def close(self) -> None:
        self.closed = True
        self._jobs.put(None)


def previews(platform) -> Previews:
    return platform.manager("labeling.previews", Previews)


# ------------------------------------------------------------------ items of a task


def _item_sources(s, user: str, workspace: str, task_ref: str, seqs_where, key: str | None = None):
    """(uri, storage options) of the media of the items ``seqs_where`` selects."""
    from pai_lab.labeling.tables import ItemRow
    from pai_lab.labeling.tasks import task_row

    task = task_row(s, user, workspace, task_ref)
    keys = [key] if key else [c["key"] for c in (task.spec or {}).get("contents", []) if c.get("type") == "image"]
    options: dict = {}
    if task.dataset:
        from pai_lab.datasets.service import storage_options_for

        try:
            options = storage_options_for(s, user, workspace, task.dataset)
        except Exception:  # noqa: BLE001 - the dataset may have been deleted since; local media still work
            options = {}
    rows = s.execute(seqs_where(select(ItemRow.seq, ItemRow.data).where(ItemRow.task_id == task.id))).all()
    return task, keys, options, rows


def item_view(
    platform, user: str, workspace: str, task_ref: str, seq: str, key: str, view_w: int, view_h: int
) -> Media:
    """The media under ``key`` of item ``seq``, images sized to the view; checks the caller may read the task."""
    from pai_lab.labeling.tables import ItemRow

    number = whole_number(seq)
    if number is None:
        raise BadInput(f"item must be a number (its seq), got {seq[:40]!r}", "item")
    with platform.store.transaction() as s:
        task, _, options, rows = _item_sources(
            s, user, workspace, task_ref, lambda q: q.where(ItemRow.seq == number), key
        )
    if not rows:
        raise NotFound(f"task {task.name!r} has no item {seq}", "item")
    value = json.loads(rows[0].data).get(key)
    if not isinstance(value, str) or not value:
        raise NotFound(f"item {seq} has no {key!r} in its data; the template reads media from that key", "key")
    return previews(platform).view(locate(platform, value, options), view_w, view_h)


def prepare_items(platform, user: str, workspace: str, task_ref: str, *, package: int | None = None) -> None:
    """Prepare, in the background, the images of one package (or of a new task's first items)."""
    from pai_lab.labeling.tables import ItemRow, PackageRow

    limit = 100_000 if package is not None else int(platform.settings.get("preview_prepare_items", PREPARE_ON_CREATE))
    if limit <= 0:
        return

    def job(pv: Previews) -> None:
        def where(q):
            if package is not None:
                q = q.join(PackageRow, PackageRow.id == ItemRow.package_id).where(PackageRow.number == package)
            return q.order_by(ItemRow.seq).limit(limit)

        with platform.store.transaction() as s:
            _, keys, options, rows = _item_sources(s, user, workspace, task_ref, where)
        for row in rows if keys else ():
            data = json.loads(row.data)
            for key in keys:
                value = data.get(key)
                if pv.closed:
                    return
                if isinstance(value, str) and value:
                    try:
                        pv.prepare(locate(platform, value, options))
                    except (BadInput, NotFound, OSError):
                        continue  # shown as the item's problem when it is viewed

    previews(platform).schedule(job)
