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
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from pai_lab.datasets.manifests import ChunkWriter, escape_key
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
    by_name, by_path = [], []
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
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def scan_local(path: Path, roots: Roots, writer: ChunkWriter, *, glob: str | None = None, content_hash: bool = False,
               progress: Progress | None = None) -> ScanResult:
    """Index a file or a folder tree. Hidden entries (``.name``) are left out, links are followed only
    when they stay inside the allowed roots, and files that vanish mid-scan are counted as skipped."""
    match = glob_matcher(glob)
    if path.is_file():
        st = path.stat()
        writer.add(path.name, st.st_size, str(st.st_mtime_ns), _sha256(str(path)) if content_hash else "")
        return ScanResult(str(path.parent) + os.sep)
    root = str(path)
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
            raise BadInput(f"cannot read folder {folder!r} (permission denied); fix its permissions or leave it out "
                           "with a glob", "source") from None
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
                    raise BadInput(f"cannot read {entry.path!r} (permission denied); fix its permissions or leave "
                                   "it out with a glob", "source") from None
                size = st.st_size
                batch_bytes += size
                lines.append(f"{escape_key(rel)}\t{size}\t{st.st_mtime_ns}\t{digest}\t\n")
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
        except Exception as exc:
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
        except Exception as exc:
            raise object_error(exc, location) from None
        if not page.get("Contents"):
            raise BadInput(f"{location.uri} holds no objects; check the bucket and prefix", "source")
        return location, True
    try:
        page = sync(fs.loop, fs._call_s3, "list_objects_v2", Bucket=location.bucket, Prefix=prefix + "/", MaxKeys=1)
    except Exception as exc:
        raise object_error(exc, location) from None
    if page.get("Contents"):
        return ObjectLocation(location.protocol, location.bucket, prefix + "/", location.options), True
    try:
        sync(fs.loop, fs._call_s3, "head_object", Bucket=location.bucket, Key=prefix)
    except Exception as exc:
        if isinstance(exc, FileNotFoundError) or "404" in str(exc) or "Not Found" in str(exc):
            raise BadInput(f"{location.uri} is neither an object nor a prefix with objects under it; check the "
                           "path", "source") from None
        raise object_error(exc, location) from None
    return location, False


def scan_objects(location: ObjectLocation, writer: ChunkWriter, *, glob: str | None = None,
                 progress: Progress | None = None) -> ScanResult:
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
