"""A service's model or processor named by URL: http(s) (under the operator's allowed prefixes, checked
by the caller) or s3/oss. Copied once into the server's cache, keyed by the object's ETag (or, when the
store gives none, the checksum of what was downloaded), and unpacked when it is one archive.

The manual's `create` example names a tar.gz over HTTP; a changed object gets a new ETag and so a new
copy, an unchanged one is not downloaded again."""

from __future__ import annotations

import hashlib
import shutil
import tarfile
import tempfile
from pathlib import Path
from urllib.parse import unquote, urlsplit

from pai_lab.errors import BadInput

ARCHIVES = (".tar.gz", ".tgz", ".tar", ".bz2", ".zip")
HTTP_SCHEMES = ("http://", "https://")
OBJECT_SCHEMES = ("s3://", "oss://")
TIMEOUT = (10, 300)  # connect, read (seconds)


def is_remote(uri: str) -> bool:
    return uri.startswith(HTTP_SCHEMES + OBJECT_SCHEMES)


def unpack_single_archive(folder: Path) -> None:
    """When ``folder`` holds one archive, its content replaces it."""
    files = list(folder.iterdir())
    if not (len(files) == 1 and files[0].is_file() and files[0].name.endswith(ARCHIVES)):
        return
    unpacked = folder / ".unpacked"
    # tar's "data" filter: no member may land outside the folder or be a device (zip files never do)
    safe = {} if files[0].name.endswith(".zip") else {"filter": "data"}
    try:
        try:
            shutil.unpack_archive(str(files[0]), str(unpacked), **safe)  # type: ignore[arg-type]
        except TypeError:  # an interpreter without extraction filters
            shutil.unpack_archive(str(files[0]), str(unpacked))
    except (shutil.ReadError, tarfile.TarError, OSError, ValueError) as exc:
        raise BadInput(f"{files[0].name} is not an archive that can be unpacked: {exc}", "model_path") from None
    files[0].unlink()
    for item in unpacked.iterdir():
        item.rename(folder / item.name)
    unpacked.rmdir()


def fetch_remote(uri: str, oss_endpoint: str | None, cache: Path, what: str, options: dict | None = None) -> Path:
    """The local copy of ``uri`` in ``cache`` (a folder), downloaded when its version is not there yet.
    ``options``: s3fs options that reach the object (the workspace's model store), else ``oss_endpoint``
    and the server's own AWS_* credentials."""
    if uri.startswith(HTTP_SCHEMES):
        version = _http_version(uri, what)
    else:
        fs, path = _object_store(uri, oss_endpoint, what, options)
        version = _store_version(fs, path, uri, what)
    base = f"{uri}|{oss_endpoint or ''}"
    if version:
        target = cache / hashlib.sha1(f"{base}|{version}".encode()).hexdigest()[:16]
        if target.exists():
            return target
    tmp = Path(tempfile.mkdtemp(dir=cache, prefix=".get-"))
    try:
        if uri.startswith(HTTP_SCHEMES):
            _http_get(uri, tmp, what)
        else:
            _store_get(fs, path, tmp, uri, what)
        if not version:  # no ETag: the same bytes are the same version
            version = "sha256:" + _checksum(tmp)
            target = cache / hashlib.sha1(f"{base}|{version}".encode()).hexdigest()[:16]
            if target.exists():
                return target
        unpack_single_archive(tmp)
        try:
            tmp.rename(target)
        except OSError:  # another create fetched the same version meanwhile
            if not target.exists():
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def _checksum(folder: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(folder)).encode())
        with path.open("rb") as fh:
            while block := fh.read(1 << 20):
                digest.update(block)
    return digest.hexdigest()


# ------------------------------------------------------------------------- http(s)


def _refuse_status(uri: str, status: int, what: str) -> None:
    if 300 <= status < 400:  # a redirect could lead past the allowed prefixes
        raise BadInput(f"{what} {uri!r} redirects ({status}); give the URL it redirects to", what)
    if status >= 400:
        raise BadInput(f"{what} {uri!r} answered HTTP {status}; check the URL", what)


def _http_version(uri: str, what: str) -> str:
    import requests

    try:
        resp = requests.head(uri, allow_redirects=False, timeout=TIMEOUT)
    except requests.RequestException as exc:
        raise BadInput(f"cannot reach {what} {uri!r}: {exc.__class__.__name__}", what) from None
    if resp.status_code == 405:  # servers that answer GET only: the checksum decides
        return ""
    _refuse_status(uri, resp.status_code, what)
    etag = resp.headers.get("ETag", "")
    if etag:
        return "etag:" + etag
    modified, length = resp.headers.get("Last-Modified", ""), resp.headers.get("Content-Length", "")
    return f"modified:{modified}|{length}" if modified else ""


def _http_get(uri: str, folder: Path, what: str) -> None:
    import requests

    name = Path(unquote(urlsplit(uri).path)).name  # models%2Fmnist.tar.gz is mnist.tar.gz
    if name in ("", ".", ".."):
        name = "download"
    try:
        with requests.get(uri, stream=True, allow_redirects=False, timeout=TIMEOUT) as resp:
            _refuse_status(uri, resp.status_code, what)
            with (folder / name).open("wb") as fh:
                for block in resp.iter_content(1 << 20):
                    fh.write(block)
    except requests.RequestException as exc:
        raise BadInput(f"cannot download {what} {uri!r}: {exc.__class__.__name__}", what) from None


# ------------------------------------------------------------------------- s3 / oss


def _object_store(uri: str, oss_endpoint: str | None, what: str, options: dict | None = None):
    import fsspec

    if options is None:
        options = {"client_kwargs": {"endpoint_url": oss_endpoint}} if oss_endpoint else {}
    try:
        return fsspec.core.url_to_fs("s3://" + uri.split("://", 1)[1], **options)
    except Exception as exc:  # noqa: BLE001 - each store raises its own kind
        raise _store_error(uri, what, exc) from None


def _store_error(uri: str, what: str, exc: Exception) -> BadInput:
    return BadInput(
        f"cannot read {what} {uri!r}: {exc}; set oss_endpoint to the store's URL and give the server "
        "AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY",
        what,
    )


def _store_version(fs, path: str, uri: str, what: str) -> str:
    """The ETags of the object, or of every object under the folder."""
    try:
        if not fs.exists(path):
            raise BadInput(f"{what} {uri!r} does not exist in the object store", what)
        if fs.isdir(path):
            found = fs.find(path, detail=True)
            return (
                "etags:"
                + hashlib.sha1(
                    repr(sorted((k, str(v.get("ETag") or v.get("size"))) for k, v in found.items())).encode()
                ).hexdigest()
            )
        info = fs.info(path)
        return "etag:" + str(info.get("ETag") or "") if info.get("ETag") else ""
    except BadInput:
        raise
    except Exception as exc:  # noqa: BLE001 - each store raises its own kind
        raise _store_error(uri, what, exc) from None


def _store_get(fs, path: str, folder: Path, uri: str, what: str) -> None:
    try:
        if fs.isdir(path):
            for remote in fs.find(path):
                dest = folder / Path(remote[len(path.rstrip("/")) + 1 :])
                dest.parent.mkdir(parents=True, exist_ok=True)
                fs.get(remote, str(dest))
        else:
            fs.get(path, str(folder / Path(path).name))
    except Exception as exc:  # noqa: BLE001 - each store raises its own kind
        raise _store_error(uri, what, exc) from None
