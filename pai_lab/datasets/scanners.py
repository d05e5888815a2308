"""Scanners: walk a local folder or list an object-store prefix, streaming index lines into a version.

Both stream: a folder is walked one directory at a time and a prefix is listed one page
(1,000 keys) at a time, so memory stays flat however many files there are. Only stat
information (or the listing's size and ETag) is read; contents are read only when a content
hash is asked for.
"""

from __future__ import annotations

import fnmatch
import hashlib
import os
import re
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pai_lab.datasets.manifests import IndexWriter, escape_key
from pai_lab.datasets.sources import ObjectLocation, Roots, filesystem, object_error
from pai_lab.errors import BadInput

Progress = Callable[[int, int], None]  # (items so far, bytes so far)
PROGRESS_EVERY = 5000


@dataclass
class ScanResult:
    base_uri: str
    skipped: int = 0


def glob_matcher(patterns: str | None) -> Callable[[str, str], bool] | None:
    """``'*.png,*.jpg'`` or ``'train/**/*.png'`` as one compiled test of (relative path, file name)."""
    if not patterns:
        return None
    by_name: list[str] = []
    by_path: list[str] = []
    for pat in (p.strip() for p in patterns.split(",")):
        if not pat:
            continue
        while pat.startswith("**/"):
            pat = pat[3:]
        (by_path if "/" in pat else by_name).append(fnmatch.translate(pat))
    name_re = re.compile("|".join(by_name)).match if by_name else None
    path_re = re.compile("|".join(by_path)).match if by_path else None
    if not name_re and not path_re:
        return None

    def match(rel: str, name: str) -> bool:
        return bool((name_re and name_re(name)) or (path_re and path_re(rel)))

    return match


def _sha256(path: str) -> str:
    digest = hashlib.sha256()  # hashlib.file_digest is Python 3.11+
    with open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def _gnu_find() -> str | None:
    """The path of a GNU find (it has -printf), or None."""
    global _FIND
    if _FIND is None:
        path = shutil.which("find")
        ok = False
        if path:
            try:
                out = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=10).stdout
                ok = "GNU" in out
            except (OSError, subprocess.SubprocessError):
                ok = False
        _FIND = path if ok else ""
    return _FIND or None


_FIND: str | None = None


def mtime_stamp(mtime_ns: int) -> str:
    """An mtime as find's %T@ prints it (seconds, 10 fractional digits): both walkers agree."""
    return f"{mtime_ns // 1_000_000_000}.{mtime_ns % 1_000_000_000:09d}0"


def _walk_with_find(find: str, root: str, roots: Roots, match, writer, progress: Progress | None) -> int:
    """Walk with a GNU find process and parse its output as it streams in: the walk runs on one
    core while Python formats index lines on another. Returns the number of skipped entries."""
    cmd = [
        find,
        root,
        "-mindepth",
        "1",
        "(",
        "-name",
        ".*",
        "-prune",
        ")",
        "-o",
        "(",
        "-type",
        "f",
        "-printf",
        r"f\0%s\0%T@\0%P\0",
        ")",
        "-o",
        "(",
        "-type",
        "l",
        "-printf",
        r"l\0\0\0%P\0",
        ")",
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ, "LC_ALL": "C"})
    assert proc.stdout is not None and proc.stderr is not None  # both are pipes
    skipped = 0
    rest = b""
    reported = 0
    try:
        while True:
            block = proc.stdout.read(1 << 20)
            if not block:
                break
            block = rest + block
            # whole records only (4 fields, each ending in NUL); the tail waits for the next block
            nuls = block.count(b"\0")
            if nuls < 4:
                rest = block
                continue
            pos = len(block)
            for _ in range(nuls % 4 + 1):
                pos = block.rindex(b"\0", 0, pos)  # ends at the last NUL of the last whole record
            rest = block[pos + 1 :]
            text = block[:pos].decode("utf-8", "surrogateescape")
            fields = text.split("\0")
            kinds, sizes, stamps, rels = fields[0::4], fields[1::4], fields[2::4], fields[3::4]
            plain = (
                "l" not in kinds
                and match is None
                and "\t" not in text
                and "\n" not in text
                and "\\" not in text
                and "\r" not in text
            )
            if plain:  # the common case, with no per-item Python branches
                lines = [f"{r}\t{z}\t{t}\t\t\n" for r, z, t in zip(rels, sizes, stamps)]
                batch_bytes = sum(map(int, sizes))
            else:
                lines, batch_bytes = [], 0
                for kind, size, stamp, rel in zip(kinds, sizes, stamps, rels):
                    if kind == "l":
                        full = os.path.join(root, rel)
                        if not roots.contains(full) or not os.path.isfile(full):
                            skipped += 1
                            continue
                        try:
                            st = os.stat(full)
                        except FileNotFoundError:
                            skipped += 1
                            continue
                        size, stamp = str(st.st_size), mtime_stamp(st.st_mtime_ns)
                    if match is not None and not match(rel, rel.rsplit("/", 1)[-1]):
                        continue
                    batch_bytes += int(size)
                    lines.append(f"{escape_key(rel)}\t{size}\t{stamp}\t\t\n")
            lines.sort()
            writer.add_raw(lines, batch_bytes)
            if progress and writer.seen - reported >= PROGRESS_EVERY:
                reported = writer.seen
                progress(reported, writer.total_bytes)
        errors = proc.stderr.read().decode("utf-8", "replace")
        code = proc.wait()
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    finally:
        proc.stdout.close()
        proc.stderr.close()
    for line in errors.splitlines():
        if "Permission denied" in line:
            raise BadInput(
                f"cannot read {line.split(': ', 1)[-1]} ; fix its permissions or leave it out with a glob", "source"
            )
        if "No such file or directory" in line:
            skipped += 1  # removed while we walked
        elif line.strip() and code:
            raise BadInput(f"scanning {root!r} failed: {line.strip()}", "source")
    return skipped


def scan_local(
    path: Path,
    roots: Roots,
    writer: IndexWriter,
    *,
    glob: str | None = None,
    content_hash: bool = False,
    progress: Progress | None = None,
) -> ScanResult:
    """Index a file or a folder tree. Hidden entries (``.name``) are left out, links are followed only
    when they stay inside the allowed roots, and files that vanish mid-scan are counted as skipped."""
    match = glob_matcher(glob)
    if path.is_file():
        st = path.stat()
        writer.add(path.name, st.st_size, mtime_stamp(st.st_mtime_ns), _sha256(str(path)) if content_hash else "")
        return ScanResult(str(path.parent) + os.sep)
    root = str(path)
    find = _gnu_find() if not content_hash and os.sep == "/" else None
    if find:
        skipped = _walk_with_find(find, root, roots, match, writer, progress)
        if progress:
            progress(writer.seen, writer.total_bytes)
        return ScanResult(root + "/", skipped)
    return _scan_python(root, roots, writer, match, content_hash, progress)


def _scan_python(root: str, roots: Roots, writer, match, content_hash: bool, progress: Progress | None) -> ScanResult:
    """The portable walk (os.scandir), used where GNU find is missing and for content hashes."""
    cut = len(root) + 1
    skipped = 0
    lines: list[str] = []
    batch_bytes = 0
    reported = 0
    stack = [root]
    while stack:
        folder = stack.pop()
        try:
            it = os.scandir(folder)
        except FileNotFoundError:
            skipped += 1  # removed while we walked
            continue
        except PermissionError:
            raise BadInput(
                f"cannot read folder {folder!r} (permission denied); fix its permissions or leave it out with a glob",
                "source",
            ) from None
        with it:
            subdirs = []
            for entry in it:
                name = entry.name
                if name[0] == ".":
                    continue
                try:
                    if entry.is_symlink():
                        if not roots.contains(entry.path):
                            skipped += 1
                            continue
                        if entry.is_dir():
                            continue  # linked folders are not walked: a loop would never end
                    elif entry.is_dir(follow_symlinks=False):
                        subdirs.append(entry.path)
                        continue
                    rel = entry.path[cut:]
                    if os.sep != "/":
                        rel = rel.replace(os.sep, "/")
                    if match is not None and not match(rel, name):
                        continue
                    st = entry.stat()
                    digest = _sha256(entry.path) if content_hash else ""
                except FileNotFoundError:
                    skipped += 1
                    continue
                except PermissionError:
                    raise BadInput(
                        f"cannot read {entry.path!r} (permission denied); fix its permissions or leave "
                        "it out with a glob",
                        "source",
                    ) from None
                size = st.st_size
                batch_bytes += size
                lines.append(f"{escape_key(rel)}\t{size}\t{mtime_stamp(st.st_mtime_ns)}\t{digest}\t\n")
            # sorted walk: versions list items in a stable order, whatever the directory order
            stack.extend(sorted(subdirs, reverse=True))
        if len(lines) >= 2000:
            lines.sort()
            writer.add_raw(lines, batch_bytes)
            lines, batch_bytes = [], 0
            if progress and writer.seen - reported >= PROGRESS_EVERY:
                reported = writer.seen
                progress(reported, writer.total_bytes)
    if lines:
        lines.sort()
        writer.add_raw(lines, batch_bytes)
    if progress:
        progress(writer.seen, writer.total_bytes)
    return ScanResult(root + "/", skipped)


def list_objects(location: ObjectLocation, *, progress_pages: Callable[[list[dict]], None]) -> None:
    """List every object under the prefix, one page at a time (constant memory)."""
    from fsspec.asyn import sync

    fs = filesystem(location)
    token = None
    kwargs = {"Bucket": location.bucket, "Prefix": location.prefix}
    while True:
        call = dict(kwargs, ContinuationToken=token) if token else kwargs
        try:
            page = sync(fs.loop, fs._call_s3, "list_objects_v2", **call)
        except Exception as exc:  # noqa: BLE001 - each store raises its own kind
            raise object_error(exc, location) from None
        progress_pages(page.get("Contents", []))
        if not page.get("IsTruncated"):
            return
        token = page["NextContinuationToken"]


def resolve_prefix(location: ObjectLocation) -> tuple[ObjectLocation, bool]:
    """A prefix given without its trailing slash is a folder if anything lies under ``prefix/``;
    otherwise it must be one object. Returns the location and whether it is a folder."""
    from fsspec.asyn import sync

    fs = filesystem(location)
    prefix = location.prefix
    if prefix == "" or prefix.endswith("/"):
        try:
            page = sync(fs.loop, fs._call_s3, "list_objects_v2", Bucket=location.bucket, Prefix=prefix, MaxKeys=1)
        except Exception as exc:  # noqa: BLE001 - each store raises its own kind
            raise object_error(exc, location) from None
        if not page.get("Contents"):
            raise BadInput(f"{location.uri} holds no objects; check the bucket and prefix", "source")
        return location, True
    try:
        page = sync(fs.loop, fs._call_s3, "list_objects_v2", Bucket=location.bucket, Prefix=prefix + "/", MaxKeys=1)
    except Exception as exc:  # noqa: BLE001 - each store raises its own kind
        raise object_error(exc, location) from None
    if page.get("Contents"):
        return ObjectLocation(location.protocol, location.bucket, prefix + "/", location.options), True
    try:
        sync(fs.loop, fs._call_s3, "head_object", Bucket=location.bucket, Key=prefix)
    except Exception as exc:  # noqa: BLE001 - each store raises its own kind
        if isinstance(exc, FileNotFoundError) or "404" in str(exc) or "Not Found" in str(exc):
            raise BadInput(
                f"{location.uri} is neither an object nor a prefix with objects under it; check the path", "source"
            ) from None
        raise object_error(exc, location) from None
    return location, False


def scan_objects(
    location: ObjectLocation, writer: IndexWriter, *, glob: str | None = None, progress: Progress | None = None
) -> ScanResult:
    """Index the objects under a prefix (folder markers left out), keyed relative to the prefix."""
    location, is_folder = resolve_prefix(location)
    match = glob_matcher(glob)
    if not is_folder:
        key = location.prefix
        folder = key.rsplit("/", 1)[0] + "/" if "/" in key else ""
        location = ObjectLocation(location.protocol, location.bucket, folder, location.options)
        name_filter = key
    else:
        name_filter = None
    cut = len(location.prefix)
    state = {"reported": 0}

    def take(objects: list[dict]) -> None:
        lines, total = [], 0
        for obj in objects:
            full = obj["Key"]
            if full.endswith("/") or (name_filter is not None and full != name_filter):
                continue
            rel = full[cut:]
            name = rel.rsplit("/", 1)[-1]
            if name.startswith(".") or (match is not None and not match(rel, name)):
                continue
            size = obj["Size"]
            total += size
            lines.append(f"{escape_key(rel)}\t{size}\t{obj.get('ETag', '').strip(chr(34))}\t\t\n")
        writer.add_raw(lines, total)
        done = writer.seen
        if progress and done - state["reported"] >= PROGRESS_EVERY:
            state["reported"] = done
            progress(done, writer.total_bytes)

    list_objects(location, progress_pages=take)
    if progress:
        progress(writer.seen, writer.total_bytes)
    return ScanResult(f"s3://{location.bucket}/{location.prefix}")
