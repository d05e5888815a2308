"""Version manifests: the item index of one immutable version, and iTAG manifest lines.

A version is stored as compressed chunks of index lines in the store, so a registration is one
transaction (a failed scan leaves nothing behind) and no file outside the store can drift from it.
Each index line is::

    key \\t size \\t stamp \\t hash \\t manifest-line-json-or-empty \\n

``stamp`` is the mtime in nanoseconds for local files, the ETag for objects and a digest of the
line for manifest items. An empty manifest column means ``{"data": {"source": base_uri + key}}``,
which keeps scanned versions small and fast to write.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import select
from sqlalchemy.orm import Session

from pai_lab.datasets.tables import ManifestChunkRow
from pai_lab.errors import BadInput

CHUNK_ITEMS = 10_000
_ENCODING = ("utf-8", "surrogateescape")  # file names that are not valid UTF-8 survive a round trip


def escape_key(key: str) -> str:
    if "\\" in key or "\t" in key or "\n" in key or "\r" in key:
        return key.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")
    return key


def unescape_key(key: str) -> str:
    if "\\" not in key:
        return key
    out, i = [], 0
    while i < len(key):
        ch = key[i]
        if ch == "\\" and i + 1 < len(key):
            nxt = key[i + 1]
            out.append({"t": "\t", "n": "\n", "r": "\r"}.get(nxt, nxt))
            i += 2
        else:
            out.append(ch)
            i += 1
    return "".join(out)


def dumps_line(line: dict) -> str:
    """A manifest line as iTAG writes it: compact, non-ASCII kept raw."""
    return json.dumps(line, ensure_ascii=False, separators=(",", ":"))


@dataclass
class IndexEntry:
    index: int
    key: str
    size: int | None
    stamp: str
    hash: str
    manifest: str  # compact JSON, or "" for a plain base_uri + key item

    def line(self, base_uri: str) -> dict:
        if self.manifest:
            return json.loads(self.manifest)
        return {"data": {"source": base_uri + self.key}}


def parse_index_line(raw: str, index: int) -> IndexEntry:
    key, size, stamp, digest, manifest = raw.split("\t", 4)
    return IndexEntry(index, unescape_key(key), int(size) if size else None, stamp, digest, manifest)


class IndexWriter(Protocol):
    """What a scan writes index lines into: a version's :class:`ChunkWriter`, or an :class:`IndexCollector`."""

    total_bytes: int

    @property
    def seen(self) -> int: ...

    def add(self, key: str, size: int | None, stamp: str, digest: str = "", manifest: str = "") -> None: ...

    def add_raw(self, lines: list[str], total_bytes: int) -> None: ...


class ChunkWriter:
    """Streams index lines into compressed chunks of a version as they come: memory stays flat.

    Chunks are spooled to a temporary file during the scan and written to the store by
    :meth:`store` at the end, so a long scan does not hold the store's write lock. Given the
    version it may repeat (``previous``), chunks equal to that version's are not kept; if the
    whole index turns out equal, the new version shares the old chunks (an unchanged re-scan
    costs a walk, not a copy)."""

    def __init__(self, session: Session, dataset_id: str, version: int, previous: int | None = None):
        self.session = session
        self.dataset_id = dataset_id
        self.version = version
        self.count = 0
        self.total_bytes = 0
        self.shared_with: int | None = None
        self._pending: list[str] = []
        self._seq = 0
        self._first = 0
        self._digest = hashlib.sha256()
        self._previous = previous
        self._matching = previous is not None  # every chunk so far equals the previous version's
        self._spool = tempfile.SpooledTemporaryFile(max_size=32 << 20)  # noqa: SIM115 - closed by close()
        # (seq, first_index, count, offset, length); offset -1: the previous version's chunk
        self._chunks: list[tuple[int, int, int, int, int]] = []

    @property
    def seen(self) -> int:
        return self.count + len(self._pending)

    def add(self, key: str, size: int | None, stamp: str, digest: str = "", manifest: str = "") -> None:
        self._pending.append(f"{escape_key(key)}\t{'' if size is None else size}\t{stamp}\t{digest}\t{manifest}\n")
        if size:
            self.total_bytes += size
        if len(self._pending) >= CHUNK_ITEMS:
            self.flush()

    def add_raw(self, lines: list[str], total_bytes: int) -> None:
        """Already formatted index lines (the fast path of the scanners)."""
        self._pending.extend(lines)
        self.total_bytes += total_bytes
        if len(self._pending) >= CHUNK_ITEMS:
            self.flush()

    def _previous_data(self, seq: int) -> bytes | None:
        if self._previous is None:
            return None
        return self.session.execute(
            select(ManifestChunkRow.data).where(
                ManifestChunkRow.dataset_id == self.dataset_id,
                ManifestChunkRow.version == self._previous,
                ManifestChunkRow.seq == seq,
            )
        ).scalar_one_or_none()

    def flush(self) -> None:
        if not self._pending:
            return
        blob = "".join(self._pending).encode(*_ENCODING)
        self._digest.update(blob)
        count = len(self._pending)
        if self._matching:
            prev = self._previous_data(self._seq)
            self._matching = prev is not None and zlib.decompress(prev) == blob
        if self._matching:
            self._chunks.append((self._seq, self._first, count, -1, 0))
        else:
            compressed = zlib.compress(blob, 1)
            offset = self._spool.tell()
            self._spool.write(compressed)
            self._chunks.append((self._seq, self._first, count, offset, len(compressed)))
        self._seq += 1
        self._first += count
        self.count += count
        self._pending = []

    def finish(self) -> str:
        """Close the last chunk; returns the digest of the whole index. Nothing is stored yet."""
        self.flush()
        if self._matching and self._previous_data(self._seq) is None:  # no further old chunk: all equal
            self.shared_with = self._previous
        return self._digest.hexdigest()

    def store(self) -> None:
        """Write the chunks to the store (nothing when the version shares its predecessor's)."""
        if self.shared_with is not None:
            self._spool.close()
            return
        for seq, first, count, offset, length in self._chunks:
            if offset < 0:
                data = self._previous_data(seq)
            else:
                self._spool.seek(offset)
                data = self._spool.read(length)
            self.session.add(
                ManifestChunkRow(
                    dataset_id=self.dataset_id,
                    version=self.version,
                    seq=seq,
                    first_index=first,
                    item_count=count,
                    data=data,
                )
            )
            self.session.flush()
        self._spool.close()


class IndexCollector:
    """Takes the place of a :class:`ChunkWriter` when a scan is only compared, never stored."""

    def __init__(self):
        self.lines: dict[str, str] = {}  # escaped key -> rest of the index line
        self.total_bytes = 0

    @property
    def seen(self) -> int:
        return len(self.lines)

    count = seen

    def add(self, key: str, size: int | None, stamp: str, digest: str = "", manifest: str = "") -> None:
        self.lines[escape_key(key)] = f"{'' if size is None else size}\t{stamp}\t{digest}\t{manifest}"

    def add_raw(self, lines: list[str], total_bytes: int) -> None:
        for raw in lines:
            key, _, rest = raw.rstrip("\n").partition("\t")
            self.lines[key] = rest
        self.total_bytes += total_bytes

    def finish(self) -> str:
        return ""


def _chunk_lines(data: bytes) -> list[str]:
    text = zlib.decompress(data).decode(*_ENCODING)
    lines = text.split("\n")
    lines.pop()  # the text ends with a newline
    return lines


def iter_index(
    session: Session, dataset_id: str, chunks_version: int, offset: int = 0, limit: int | None = None
) -> Iterator[IndexEntry]:
    """The version's entries in order, from ``offset``, reading one chunk at a time."""
    query = (
        select(ManifestChunkRow.seq)
        .where(ManifestChunkRow.dataset_id == dataset_id, ManifestChunkRow.version == chunks_version)
        .order_by(ManifestChunkRow.seq)
    )
    if offset:
        # the chunk that holds `offset` and every later one
        query = query.where(ManifestChunkRow.first_index + ManifestChunkRow.item_count > offset)
    seqs = session.scalars(query).all()
    remaining = limit
    for seq in seqs:
        chunk = session.get(ManifestChunkRow, (dataset_id, chunks_version, seq))
        assert chunk is not None  # its seq was just read
        lines = _chunk_lines(chunk.data)
        start = max(0, offset - chunk.first_index)
        for i in range(start, len(lines)):
            if remaining is not None:
                if remaining <= 0:
                    return
                remaining -= 1
            yield parse_index_line(lines[i], chunk.first_index + i)
        session.expunge(chunk)  # keep memory flat on long versions


def raw_index(session: Session, dataset_id: str, chunks_version: int) -> Iterator[str]:
    """The version's raw index lines (no parsing)."""
    for lines in raw_chunks(session, dataset_id, chunks_version):
        yield from lines


def raw_chunks(session: Session, dataset_id: str, chunks_version: int) -> Iterator[list[str]]:
    """The version's raw index lines, a chunk's list at a time: what diff works on."""
    seqs = session.scalars(
        select(ManifestChunkRow.seq)
        .where(ManifestChunkRow.dataset_id == dataset_id, ManifestChunkRow.version == chunks_version)
        .order_by(ManifestChunkRow.seq)
    ).all()
    for seq in seqs:
        data = session.execute(
            select(ManifestChunkRow.data).where(
                ManifestChunkRow.dataset_id == dataset_id,
                ManifestChunkRow.version == chunks_version,
                ManifestChunkRow.seq == seq,
            )
        ).scalar_one()
        yield _chunk_lines(data)


# ---------------------------------------------------------------- iTAG manifest lines in


def normalize_line(value: Any, where: str) -> dict:
    """A manifest line from user input: a dict with a ``data`` object, or a plain text."""
    if isinstance(value, str):
        return {"data": {"source": value}}
    if not isinstance(value, dict):
        raise BadInput(
            f'{where}: expected an object like {{"data": {{"source": ...}}}} or a text, got {type(value).__name__}',
            "items",
        )
    if "data" not in value:
        # a bare record ({"source": ..., "label": ...}) is taken as the data of one line
        return {"data": dict(value)}
    if not isinstance(value["data"], dict):
        raise BadInput(f'{where}: "data" must be an object of fields, like {{"source": ...}}', "items")
    return value


def parse_manifest_text(lines: Iterable[str], *, name: str, text_lines: bool) -> Iterator[dict]:
    """Lines of a .manifest (JSON Lines) or TXT file as manifest dicts; errors name the line number.

    In a TXT file a line that is not a JSON object is one text item, as iTAG accepts."""
    for number, raw in enumerate(lines, 1):
        raw = raw.strip("\r\n")
        if not raw.strip():
            continue
        if text_lines and not raw.lstrip().startswith("{"):
            yield {"data": {"source": raw}}
            continue
        try:
            value = json.loads(raw)
        except json.JSONDecodeError as exc:  # raw is text: the only ValueError json raises
            raise BadInput(
                f"{name} line {number} is not valid JSON ({exc.msg} at column {exc.colno}); each "
                'line must be one object like {"data":{"source":"..."}}',
                "source",
            ) from None
        if not isinstance(value, dict) or not isinstance(value.get("data"), dict):
            raise BadInput(
                f'{name} line {number} has no "data" object; each line must look like {{"data":{{"source":"..."}}}}',
                "source",
            )
        yield value


class ManifestKeys:
    """Keys for manifest items: the data.source when it is a short reference, else the line number.
    Repeated keys get ``#2``, ``#3``... so every item has one."""

    def __init__(self):
        self._seen: dict[str, int] = {}

    def key(self, line: dict, index: int) -> str:
        source = line.get("data", {}).get("source")
        base = (
            source
            if isinstance(source, str) and 0 < len(source) <= 1024 and "\n" not in source
            else f"line-{index + 1:08d}"
        )
        n = self._seen.get(base, 0) + 1
        self._seen[base] = n
        return base if n == 1 else f"{base}#{n}"


def line_stamp(text: str) -> str:
    return hashlib.blake2b(text.encode(*_ENCODING), digest_size=10).hexdigest()
