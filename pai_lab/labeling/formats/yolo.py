"""YOLO detection folder, laid out as Ultralytics reads it::

    data.yaml                 path, train, val, names {0: cat, 1: dog}
    images/train/<stem>.jpg   (copied when copy_images, the default)
    labels/train/<stem>.txt   one line per box: class x_center y_center width height (0-1)
    images/val/ ... labels/val/ ...

Options: ``val_ratio`` (default 0.1; items are split by a seeded draw, so the split is stable),
``seed`` (0), ``copy_images`` (True: images are read through fsspec and copied next to their
labels, which is what Ultralytics needs), ``segments`` (False: write polygons as
``class x1 y1 x2 y2 ...`` for YOLO segmentation instead of boxes).
"""

from __future__ import annotations

import os
import posixpath
import queue
import random
import threading
from collections.abc import Iterator

import fsspec
import orjson
import yaml
from fsspec.implementations.local import LocalFileSystem

from pai_lab.errors import BadInput
from pai_lab.labeling.formats import ExportContext, bbox, image_elements, shape_labels

NAME = "yolo"


def fits(ctx: ExportContext) -> None:
    if not ctx.questions("boxes"):
        raise BadInput(f"YOLO holds boxes; the {ctx.template} template has none. Use itag or label-studio", "format")


def _f(v: float) -> str:
    return f"{v:.6f}"


def label_lines(q, el, categories: dict[str, int], segments: bool) -> Iterator[str]:
    w, h = el["width"], el["height"]
    for s in el["data"]:
        labels = shape_labels(q, s["labels"])
        if not labels or labels[0] not in categories:
            continue
        cls = categories[labels[0]]
        if segments:
            yield f"{cls} " + " ".join(f"{_f(x / w)} {_f(y / h)}" for x, y in s["value"])
        else:
            x1, y1, x2, y2 = bbox(s["value"])
            x1, x2 = max(0, x1), min(w, x2)  # Ultralytics drops boxes that leave the image
            y1, y2 = max(0, y1), min(h, y2)
            yield f"{cls} {_f((x1 + x2) / 2 / w)} {_f((y1 + y2) / 2 / h)} {_f((x2 - x1) / w)} {_f((y2 - y1) / h)}"


def _write_items(ctx, fs, path, draw, val_ratio, categories, segments, copy_images, used, writer) -> None:
    for r in ctx.rows():
        split = "val" if draw.random() < val_ratio else "train"
        if r.final is None:
            continue
        data = orjson.loads(r.data)
        els = image_elements(ctx, orjson.loads(r.final))
        if not els:
            continue
        q, el = els[0]
        source = str(data.get(q.bind or "source"))
        name = posixpath.basename(source.split("?")[0]) or f"{r.seq}.jpg"
        stem, dot, ext = name.rpartition(".")
        stem, ext = (stem, ext) if dot else (name, "jpg")
        if stem in used:  # two images with one file name: keep both
            stem = f"{stem}_{r.seq}"
        used.add(stem)
        lines = "".join(line + "\n" for line in label_lines(q, el, categories, segments))
        target = posixpath.join(path, "labels", split, stem + ".txt")
        if writer is not None:
            writer.put(target, lines.encode())
        else:
            with fs.open(target, "w") as f:
                f.write(lines)
        if copy_images:
            try:
                with (
                    fsspec.open(ctx.readable(source), "rb") as src,
                    fs.open(posixpath.join(path, "images", split, f"{stem}.{ext}"), "wb") as dst,
                ):
                    while chunk := src.read(1 << 20):
                        dst.write(chunk)
            except (OSError, ValueError) as exc:
                raise BadInput(
                    f"cannot copy image {source!r} of item {r.seq}: {exc}; export with "
                    "options={'copy_images': False} to write labels only",
                    "options.copy_images",
                ) from None


class _FileWriter:
    """Creates the many small label files on threads of their own: creating a file is kernel
    work that releases the GIL, so it overlaps with reading and formatting the next items."""

    def __init__(self, threads: int = 2, backlog: int = 2048):
        self.pending: queue.Queue = queue.Queue(backlog)  # bounded: memory stays flat
        self.error: OSError | None = None
        self.threads = [threading.Thread(target=self._run, daemon=True) for _ in range(threads)]
        for t in self.threads:
            t.start()

    def put(self, target: str, data: bytes) -> None:
        if self.error is not None:
            raise self.error
        self.pending.put((target, data))

    def _run(self) -> None:
        while (job := self.pending.get()) is not None:
            if self.error is not None:
                continue
            try:
                fd = os.open(job[0], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
                try:
                    os.write(fd, job[1])
                finally:
                    os.close(fd)
            except OSError as exc:
                self.error = exc

    def close(self) -> None:
        for _ in self.threads:
            self.pending.put(None)
        for t in self.threads:
            t.join()
        if self.error is not None:
            raise self.error


def export_to(ctx: ExportContext, fs, path: str) -> list[str]:
    opts = ctx.options
    val_ratio = float(opts.get("val_ratio", 0.1))
    if not 0 <= val_ratio < 1:
        raise BadInput("options.val_ratio must be in [0, 1)", "options.val_ratio")
    copy_images = bool(opts.get("copy_images", True))
    segments = bool(opts.get("segments", False))
    draw = random.Random(int(opts.get("seed", 0)))
    categories = {name: i for i, name in enumerate(ctx.labels)}
    for split in ("train", "val"):
        fs.makedirs(posixpath.join(path, "labels", split), exist_ok=True)
        fs.makedirs(posixpath.join(path, "images", split), exist_ok=True)
    used: set[str] = set()
    local = isinstance(fs, LocalFileSystem)
    writer = _FileWriter() if local else None
    try:
        _write_items(ctx, fs, path, draw, val_ratio, categories, segments, copy_images, used, writer)
    finally:
        if writer is not None:
            writer.close()
    doc = {
        "path": ctx.destination or path,
        "train": "images/train",
        "val": "images/val" if val_ratio else "images/train",
        "names": {i: n for n, i in categories.items()},
    }
    with fs.open(posixpath.join(path, "data.yaml"), "w") as f:
        f.write(yaml.safe_dump(doc, allow_unicode=True, sort_keys=False))
    return [posixpath.join(path, "data.yaml")]
