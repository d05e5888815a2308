"""Where a dataset's bytes live: local paths under the allowed roots, S3 (and OSS) prefixes.

Local paths are checked by the one containment policy (:mod:`pai_lab.security.paths`): after
resolving symlinks and ``..``, inside the allowed roots and never in the server's state folder.
Object stores go through s3fs with the dataset's own storage options; secrets in those options
are masked whenever they are shown.
"""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from pai_lab.errors import BadInput
from pai_lab.security.paths import Containment

SECRET_OPTIONS = {
    "secret",
    "token",
    "password",
    "aws_secret_access_key",
    "aws_session_token",
    "session_token",
    "sas_token",
    "account_key",
    "client_secret",
}
MASK = "***"
MANIFEST_SUFFIXES = (".manifest", ".jsonl")
TEXT_SUFFIXES = (".txt",)


# The allowed roots and the state folder are one policy, owned by pai_lab.security.paths; ``Roots`` is
# its name in the datasets area.
Roots = Containment


# ---------------------------------------------------------------- object stores


def mask_options(options: dict[str, Any] | None) -> dict[str, Any]:
    """The storage options as they may be shown: every secret replaced by ``***``."""

    def walk(value):
        if isinstance(value, dict):
            return {
                k: (MASK if k.lower() in SECRET_OPTIONS and v not in (None, "") else walk(v)) for k, v in value.items()
            }
        return value

    return walk(copy.deepcopy(options or {}))


def merge_masked(new: dict[str, Any], old: dict[str, Any]) -> dict[str, Any]:
    """Options sent back with ``***`` keep the stored secret (a client only ever sees masks)."""
    out = {}
    for key, value in new.items():
        if value == MASK and key in old:
            out[key] = old[key]
        elif isinstance(value, dict) and isinstance(old.get(key), dict):
            out[key] = merge_masked(value, old[key])
        else:
            out[key] = value
    return out


@dataclass
class ObjectLocation:
    protocol: str  # s3 (oss:// is served as S3)
    bucket: str
    prefix: str  # "" or ending in "/" for a folder; a key for a single object
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"


def s3_options(options: dict[str, Any]) -> dict[str, Any]:
    """User-facing options (``endpoint_url``, ``region``...) as s3fs keyword arguments."""
    opts = copy.deepcopy(options or {})
    client_kwargs = dict(opts.pop("client_kwargs", None) or {})
    for name in ("endpoint_url", "region_name"):
        if name in opts:
            client_kwargs.setdefault(name, opts.pop(name))
    if "region" in opts:
        client_kwargs.setdefault("region_name", opts.pop("region"))
    if client_kwargs:
        opts["client_kwargs"] = client_kwargs
    return opts


def endpoint_of(options: dict[str, Any]) -> str | None:
    return (
        options.get("endpoint_url")
        or (options.get("client_kwargs") or {}).get("endpoint_url")
        or os.environ.get("AWS_ENDPOINT_URL_S3")
        or os.environ.get("AWS_ENDPOINT_URL")
    )


def parse_object_uri(uri: str, options: dict[str, Any]) -> ObjectLocation:
    """``s3://bucket/prefix`` or ``oss://bucket[.endpoint]/prefix`` with its s3fs options."""
    parts = urlsplit(uri)
    scheme = parts.scheme.lower()
    netloc, prefix = parts.netloc, parts.path.lstrip("/")
    if not netloc:
        raise BadInput(f"source {uri!r} has no bucket; write {scheme}://BUCKET/PREFIX/", "source")
    opts = dict(options or {})
    if scheme == "oss":
        # iTAG writes oss://bucket.oss-cn-hangzhou.aliyuncs.com/path: the endpoint rides in the host name
        if "." in netloc and not endpoint_of(opts):
            netloc, host = netloc.split(".", 1)
            opts["endpoint_url"] = f"https://{host}"
        if not endpoint_of(opts):
            raise BadInput(
                f"source {uri!r}: oss:// is read as S3-compatible storage and needs an endpoint; "
                'give storage_options {"endpoint_url": "https://oss-<region>.aliyuncs.com"}',
                "storage_options",
            )
        netloc = netloc.split(".", 1)[0]
    return ObjectLocation("s3", netloc, prefix, s3_options(opts))


def filesystem(location: ObjectLocation):
    import s3fs

    # s3fs reuses one instance per set of options (its connection pool); listings are never cached,
    # so every scan sees the bucket as it is now.
    return s3fs.S3FileSystem(use_listings_cache=False, **location.options)


def object_error(exc: BaseException, location: ObjectLocation) -> BadInput:
    """An object-store failure as a message that says what to fix."""
    text = str(exc) or type(exc).__name__
    lower = text.lower()
    if (
        isinstance(exc, PermissionError)
        or "accessdenied" in lower
        or "invalidaccesskeyid" in lower
        or "signaturedoesnotmatch" in lower
        or "forbidden" in lower
    ):
        return BadInput(
            f"{location.uri}: access denied ({text}); check key/secret (or profile) in storage_options",
            "storage_options",
        )
    if isinstance(exc, FileNotFoundError) or "nosuchbucket" in lower:
        return BadInput(f"{location.uri}: bucket {location.bucket!r} or prefix not found ({text})", "source")
    return BadInput(
        f"{location.uri}: the object store could not be reached ({text}); check endpoint_url and the network",
        "storage_options",
    )


def split_local_uri(source: str) -> str | None:
    """The local path a source refers to, or None for remote URIs."""
    if source.startswith("file://"):
        return source[len("file://") :]
    if "://" in source:
        return None
    return source
