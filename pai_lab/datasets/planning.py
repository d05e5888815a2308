"""Planning a registration: what a source is (folder, prefix, manifest, items, sample), its media type,
and the ``fill`` that writes its items into a version. Nothing is written here.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pai_lab.datasets import manifests as mf
from pai_lab.datasets import samples as sample_sets
from pai_lab.datasets.scanners import Progress, ScanResult, resolve_prefix, scan_local, scan_objects
from pai_lab.datasets.schemas import DatasetCreate
from pai_lab.datasets.sources import (
    MANIFEST_SUFFIXES,
    TEXT_SUFFIXES,
    ObjectLocation,
    Roots,
    filesystem,
    object_error,
    parse_object_uri,
)
from pai_lab.errors import BadInput

EXTENSIONS = {
    "image": {".png", ".jpg", ".jpeg", ".gif", ".bmp", ".webp", ".tif", ".tiff"},
    "video": {".mp4", ".avi", ".mov", ".mkv", ".webm"},
    "audio": {".wav", ".mp3", ".flac", ".ogg", ".m4a"},
    "text": {".txt", ".md", ".json"},
    "tabular": {".csv", ".tsv", ".parquet", ".xlsx"},
}
_BY_EXT = {ext: kind for kind, exts in EXTENSIONS.items() for ext in exts}


def kind_of_name(name: str) -> str | None:
    return _BY_EXT.get(os.path.splitext(name)[1].lower())


def detect_type(samples: Iterable[str], manifest_texts: bool = False) -> str:
    """The most common media type among item names; texts when the sources are not file names."""
    counts: dict[str, int] = {}
    n = 0
    for name in samples:
        n += 1
        kind = kind_of_name(name.split("?", 1)[0])
        if kind is None and manifest_texts and ("/" not in name or " " in name):
            kind = "text"
        counts[kind or "other"] = counts.get(kind or "other", 0) + 1
    if not n:
        return "other"
    return max(counts.items(), key=lambda kv: (kv[1], kv[0] != "other"))[0]


def fill_lines(
    lines: Iterable[Any],
    where: str,
    *,
    already_parsed: bool = False,
    progress: Progress | None = None,
    file_sizes: bool = False,
    roots: Roots | None = None,
    field: str = "items",
) -> Callable[[mf.ChunkWriter], ScanResult]:
    def fill(writer: mf.ChunkWriter) -> ScanResult:
        keys = mf.ManifestKeys()
        for index, value in enumerate(lines):
            line = value if already_parsed else mf.normalize_line(value, f"{where} item {index + 1}")
            if roots is not None:  # an item is read later by whoever may read the dataset: contain it now
                roots.check_item(line.get("data"), field)
            text = mf.dumps_line(line)
            # a manifest item has no size of its own (a sample's files, written by us, do); its stamp is a
            # digest of the line
            size = _file_size(line) if file_sizes else None
            writer.add(keys.key(line, index), size, mf.line_stamp(text), "", text)
            if progress and index % 5000 == 4999:
                progress(writer.seen, 0)
        if progress:
            progress(writer.seen, 0)
        return ScanResult("")

    return fill


def _file_size(line: dict) -> int | None:
    source = line.get("data", {}).get("source")
    try:
        return os.path.getsize(source) if isinstance(source, str) and os.path.isabs(source) else None
    except OSError:
        return None


def _peek_sources(lines: list[dict]) -> list[str]:
    out = []
    for line in lines[:1000]:
        source = line.get("data", {}).get("source")
        if isinstance(source, str):
            out.append(source)
    return out


@dataclass
class Plan:
    kind: str  # local, s3, manifest, inline, sample
    source_uri: str
    property: str
    origin: str = "user"
    data_type: str | None = None
    description: str = ""
    fill: Callable[[mf.ChunkWriter], ScanResult] | None = None
    storage_options: dict | None = None


def manifest_lines_local(path: Path) -> Iterator[dict]:
    with open(path, encoding="utf-8", errors="surrogateescape") as fh:
        yield from mf.parse_manifest_text(fh, name=path.name, text_lines=path.suffix.lower() in TEXT_SUFFIXES)


def manifest_lines_object(location: ObjectLocation) -> Iterator[dict]:
    fs = filesystem(location)
    try:
        fh = fs.open(f"{location.bucket}/{location.prefix}", "rt", encoding="utf-8")
    except Exception as exc:  # noqa: BLE001 - each store raises its own kind
        raise object_error(exc, location) from None
    with fh:
        name = location.prefix.rsplit("/", 1)[-1]
        yield from mf.parse_manifest_text(fh, name=name, text_lines=name.lower().endswith(TEXT_SUFFIXES))


def _first_lines(lines: Iterator[dict], n: int = 1000) -> tuple[list[dict], Iterator[dict]]:
    """Peek at the first lines (to detect the type) without losing them."""
    head = list(itertools.islice(lines, n))
    return head, itertools.chain(head, lines)


def plan_source(spec: DatasetCreate, roots: Roots | None, state_dir: Path | None, progress: Progress | None) -> Plan:
    if spec.items is not None:
        if spec.source:
            raise BadInput("give either `source` or `items`, not both", "items")
        given = [mf.normalize_line(v, f"item {i + 1}") for i, v in enumerate(spec.items)]
        return Plan(
            "inline",
            "",
            "file",
            data_type=detect_type(_peek_sources(given), manifest_texts=True),
            fill=fill_lines(given, "items", already_parsed=True, progress=progress, roots=roots),
        )
    source = (spec.source or "").strip()
    if not source:
        raise BadInput(
            "`source` is required: a folder, a file, s3://bucket/prefix/, a .manifest or sample://NAME", "source"
        )
    if source.startswith("sample://"):
        name = source[len("sample://") :].strip("/")
        if state_dir is None:
            raise BadInput("sample datasets are registered through the server", "source")
        data_type, description, lines, folder = sample_sets.materialize(name, state_dir)
        # a sample with files points at their folder, so jobs can mount it like any folder
        return Plan(
            "sample",
            str(folder) if folder else source,
            "folder" if folder else "file",
            origin="public",
            data_type=data_type,
            description=description,
            fill=fill_lines(lines, source, already_parsed=True, progress=progress, file_sizes=True),
        )
    scheme = source.split("://", 1)[0].lower() if "://" in source else ""
    if scheme in ("s3", "oss"):
        if roots is not None:  # read with the credentials declared here, never the server's own
            roots.object_options(source, spec.storage_options, "source")
        location = parse_object_uri(source, spec.storage_options)
        if location.prefix.lower().endswith(MANIFEST_SUFFIXES + TEXT_SUFFIXES):
            head, lines = _first_lines(manifest_lines_object(location))
            return Plan(
                "manifest",
                source,
                "file",
                data_type=detect_type(_peek_sources(head), True),
                fill=fill_lines(lines, source, already_parsed=True, progress=progress, roots=roots, field="source"),
                storage_options=spec.storage_options,
            )
        plan = Plan("s3", source, "folder", storage_options=spec.storage_options)
        if spec.scan:
            plan.fill = lambda writer: scan_objects(location, writer, glob=spec.glob, progress=progress)
        else:
            _loc, is_folder = resolve_prefix(location)  # reachable, and the credentials work
            plan.property = "folder" if is_folder else "file"
        return plan
    if scheme and scheme != "file":
        raise BadInput(
            f"source {source!r}: unsupported scheme {scheme}://; use a local path, s3://, oss:// or sample://", "source"
        )
    if roots is None:
        raise BadInput("local sources are registered through the server", "source")
    path = roots.resolve(source)
    if path.is_file() and path.suffix.lower() in MANIFEST_SUFFIXES + TEXT_SUFFIXES:
        head, lines = _first_lines(manifest_lines_local(path))
        return Plan(
            "manifest",
            str(path),
            "file",
            data_type=detect_type(_peek_sources(head), True),
            fill=fill_lines(lines, path.name, already_parsed=True, progress=progress, roots=roots, field="source"),
        )
    plan = Plan("local", str(path), "file" if path.is_file() else "folder")
    if spec.scan or path.is_file():
        plan.fill = lambda writer: scan_local(
            path, roots, writer, glob=spec.glob, content_hash=spec.hash, progress=progress
        )
    return plan
