"""The one containment policy for every field that names a path or a URL.

A member of a workspace may name files for the server to read (dataset sources and items, scans,
media, previews, code sources, job code, models, processors, warm-up data) or to write (exports).
Every such field goes through :class:`Containment`:

- ``..`` and symlinks are resolved first, then the real path is checked;
- the server's state folder (``<root>/.pai_lab``: the store, server.json with the owner's token,
  stored secrets) is never data, never a target and never listed, whatever the roots say;
- a path outside the allowed roots (root_dir plus ``allowed_roots``) is refused with one message
  that does not depend on whether it exists, so the refusal is no oracle for the file system;
- http(s) URLs are read by the server only under prefixes the operator allows
  (``allowed_url_prefixes``; none by default), so a manifest cannot make it a request forger;
- s3:// and oss:// objects are read and written only with the credentials the member or workspace
  declares (storage options with a key and secret, or anonymous), never with the server's own (its
  AWS_* variables, ~/.aws profiles, instance role), except under prefixes the operator allows
  (``allowed_object_prefixes``; none by default);
- writes never replace an existing target unless asked.
"""

from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path

from pai_lab.errors import BadInput, Conflict

STATE_FOLDER = ".pai_lab"
# The bundled samples are materialised under <state>/samples. They are generated public data (no
# secret is ever written there), so this one sub-folder may be read as data.
SAMPLES_FOLDER = "samples"
# Remote stores the server reads and writes with the dataset's or request's own credentials.
OBJECT_SCHEMES = ("s3", "oss")


def _real(path: str | Path) -> Path:
    return Path(os.path.realpath(path))


def _inside(real: Path, folder: Path) -> bool:
    return real == folder or folder in real.parents


def scheme_of(raw: str) -> str:
    """``s3``, ``http``, ... ; ``""`` for a plain path (``file://`` is a plain path too)."""
    scheme = raw.split("://", 1)[0].lower() if "://" in raw else ""
    return "" if scheme == "file" else scheme


_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*(::[A-Za-z][A-Za-z0-9+.\-]*)*://")  # s3://, simplecache::file://


def names_a_location(value: str) -> bool:
    """Whether an item's value is a path or URL rather than a text (texts have spaces or lines, no slash)."""
    if _URL.match(value) or value.startswith(("/", "~", ".")):
        return True
    return "/" in value and not any(c.isspace() for c in value)


def open_own_file(path: str | Path):
    """A text file the server wrote in a folder a member's code may write (a pipeline step's log): opened
    only when it is a regular file itself, never through a link (a step can turn its log into a link to
    server.json) nor a FIFO (never blocks); None otherwise. The caller closes it."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        return None
    return os.fdopen(fd, encoding="utf-8", errors="replace")


@dataclass(frozen=True)
class Containment:
    """Which local paths and URLs the server may touch on a member's behalf."""

    root_dir: Path
    allowed: tuple[Path, ...] = ()
    state_dir: Path | None = None
    url_prefixes: tuple[str, ...] = ()
    extra_secrets: tuple[Path, ...] = ()  # e.g. a SQLite store configured outside the state folder
    object_prefixes: tuple[str, ...] = ()  # s3:// / oss:// prefixes read with the server's own credentials

    @classmethod
    def from_platform(cls, platform) -> Containment:
        settings = getattr(platform, "settings", {}) or {}
        extra = settings.get("allowed_roots") or []
        root = Path(platform.root_dir)
        state = Path(getattr(platform, "state_dir", None) or root / STATE_FOLDER)
        secrets: list[Path] = []
        url = str(getattr(platform, "database_url", "") or "")
        if url.startswith("sqlite:///"):
            db = url[len("sqlite:///") :].split("?", 1)[0]
            if db and db != ":memory:":
                secrets += [Path(db + suffix) for suffix in ("", "-wal", "-shm", "-journal")]
        return cls(
            root,
            tuple(Path(p).expanduser() for p in extra),
            state,
            tuple(settings.get("allowed_url_prefixes") or ()),
            tuple(secrets),
            tuple(settings.get("allowed_object_prefixes") or ()),
        )

    # ------------------------------------------------------------ local paths

    @property
    def all(self) -> list[Path]:
        return [_real(p) for p in (self.root_dir, *self.allowed)]

    def _state(self) -> Path:
        return _real(self.state_dir if self.state_dir is not None else self.root_dir / STATE_FOLDER)

    def is_secret(self, real: Path, *, writing: bool = False) -> bool:
        """Whether a resolved path is the state folder or inside it (the samples are readable data)."""
        state = self._state()
        if any(real == _real(p) for p in self.extra_secrets):
            return True
        if not _inside(real, state):
            return False
        return writing or not _inside(real, state / SAMPLES_FOLDER)

    def contains(self, path: str | Path, *, writing: bool = False) -> bool:
        """Whether the server may touch ``path`` (after resolving links and ``..``)."""
        real = _real(path)
        return any(_inside(real, root) for root in self.all) and not self.is_secret(real, writing=writing)

    def resolve(self, raw: str, what: str = "source", must_exist: bool = True, *, writing: bool = False) -> Path:
        """The real path ``raw`` names (relative ones start at the root), or BadInput naming ``what``.

        ``must_exist=False`` is for paths about to be written (export targets); ``writing`` also
        keeps the samples folder out of reach."""
        text = str(raw).removeprefix("file://")
        if not text or "\0" in text:
            raise BadInput(f"{what} {raw!r} is not a path", what)
        path = Path(text).expanduser()
        if not path.is_absolute():
            path = self.root_dir / path
        real = _real(path)
        if not self.contains(real, writing=writing):
            # one message for existing and missing paths alike: a refusal tells nothing about the disk
            raise BadInput(self.refusal(raw, what), what)
        if must_exist and not real.exists():
            raise BadInput(
                f"{what} {raw!r} does not exist; check the path (relative paths start at {self.root_dir})", what
            )
        return real

    def refusal(self, raw: str, what: str) -> str:
        return (
            f"{what} {raw!r} is outside the allowed folders {self._roots_text()} (the server's own "
            f"{STATE_FOLDER} state folder never counts); move the data there or ask the server's owner to add "
            "its folder to allowed_roots"
        )

    def target(self, raw: str, what: str = "to", *, overwrite: bool = False) -> Path:
        """A local path to write: inside the roots, outside the state folder, new unless ``overwrite``."""
        real = self.resolve(raw, what, must_exist=False, writing=True)
        if real in self.all:
            raise BadInput(f"{what} {raw!r} is a root folder itself; name a file or folder inside it", what)
        if real.exists() and not overwrite:
            raise Conflict(f"{what} {raw!r} already exists; give overwrite=true to replace it, or another path", what)
        return real

    def _roots_text(self) -> str:
        return ", ".join(str(p) for p in self.all)

    # ------------------------------------------------------------ any location

    def check(self, raw: str, what: str = "source", *, must_exist: bool = False) -> str:
        """A path or URL named in data (an item's source, a model path): local paths must be contained,
        http(s) URLs allowed by an operator's prefix; object stores (s3://, oss://) pass, read with the
        dataset's own credentials; any other scheme is refused. Returns ``raw`` (local paths resolved)."""
        if not isinstance(raw, str):
            return raw
        scheme = scheme_of(raw)
        if scheme == "":
            return str(self.resolve(raw, what, must_exist=must_exist))
        if scheme in ("http", "https"):
            self.check_url(raw, what)
        elif scheme not in OBJECT_SCHEMES:  # local://, memory://, chained simplecache::file:// ... reach past it all
            raise BadInput(
                f"{what} {raw!r}: {scheme}:// locations are not read here; use a path inside the allowed "
                f"folders, an s3:// or oss:// object, or an http(s) URL the server allows",
                what,
            )
        return raw

    def check_item(self, data, what: str, keys=("source",)) -> None:
        """A manifest line's ``data`` (dataset items, a labeling task's inline lines): each of ``keys``
        that names a path or URL is checked as :meth:`check` does, when the item is given, not when it
        is first read; texts pass."""
        if not isinstance(data, dict):
            return
        for key in keys:
            value = data.get(key)
            if isinstance(value, str) and names_a_location(value):
                self.check(value, what)

    def url_allowed(self, url: str) -> bool:
        return any(url.startswith(prefix) for prefix in self.url_prefixes if prefix)

    def check_url(self, url: str, what: str = "source") -> str:
        if not self.url_allowed(url):
            raise BadInput(
                f"{what} {url!r}: this server reads http(s) URLs only under the prefixes its owner allows "
                f"(allowed_url_prefixes: {', '.join(self.url_prefixes) or 'none'}); put the file in the "
                "workspace's folders or a bucket",
                what,
            )
        return url

    # ------------------------------------------------------------ object stores

    def object_allowed(self, uri: str) -> bool:
        """Whether an operator lets the server read ``uri`` with its own credentials."""
        return any(uri.startswith(prefix) for prefix in self.object_prefixes if prefix)

    def object_options(self, uri: str, options: dict | None, what: str = "source") -> dict:
        """The storage options to read or write the s3:// / oss:// object ``uri`` with: those declared
        (a dataset's, a request's, the workspace's model store) when they carry credentials of their own
        (a key and secret, or ``anon``); under an ``allowed_object_prefixes`` prefix, whatever is given,
        since there the server's own credentials may answer. Anything else would be read with the
        server's credentials (its AWS_* variables, a profile of its ~/.aws, its instance role): refused,
        naming ``what`` and the fix."""
        given = dict(options or {})
        if self.object_allowed(uri):
            return given
        client: dict = given["client_kwargs"] if isinstance(given.get("client_kwargs"), dict) else {}
        config: dict = given["config_kwargs"] if isinstance(given.get("config_kwargs"), dict) else {}
        named_profile = given.get("profile") or client.get("profile_name") or config.get("profile_name")
        key = given.get("key") or client.get("aws_access_key_id")
        secret = given.get("secret") or client.get("aws_secret_access_key")
        if not named_profile and (given.get("anon") is True or (key and secret)):
            return given
        why = (
            "a `profile` names the server's own credentials file"
            if named_profile
            else "no credentials of its own are given, so the server's would answer"
        )
        raise BadInput(
            f"{what} {uri!r}: this server reads and writes s3:// and oss:// objects only with the credentials "
            f"the workspace declares ({why}); give storage_options with key and secret (or anon: true for a "
            "public bucket), or set the workspace's model store, or ask the server's owner to allow the prefix "
            f"(allowed_object_prefixes: {', '.join(self.object_prefixes) or 'none'})",
            what,
        )

    # ------------------------------------------------------------ what the server opens

    def readable(self, raw: str, what: str = "source", *, options: dict | None = None) -> Path | str:
        """Where the server may read ``raw`` (item media, an export's images): the real local path, an
        http(s) URL under an allowed prefix, or an s3:// / oss:// object read with ``options`` as
        :meth:`object_options` allows. Other schemes are refused: fsspec would open ``local://`` or
        chained ``simplecache::file://`` URLs on the server's own disk, past every check above."""
        scheme = scheme_of(raw)
        if scheme == "":
            return self.resolve(raw, what, must_exist=False)
        if scheme in ("http", "https"):
            return self.check_url(raw, what)
        if scheme in OBJECT_SCHEMES:
            self.object_options(raw, options, what)
            return raw
        raise BadInput(
            f"{what} {raw!r}: cannot read {scheme}:// locations; use a path inside the allowed folders, "
            "file://, s3://, oss:// or an allowed http(s) URL",
            what,
        )

    def writable(
        self, raw: str, what: str = "to", *, overwrite: bool = False, options: dict | None = None
    ) -> Path | str:
        """Where the server may write (an export): a local :meth:`target`, or an s3:// / oss:// object
        written with ``options`` as :meth:`object_options` allows (whether one already exists there is
        the writer's check); nothing else."""
        scheme = scheme_of(raw)
        if scheme == "":
            return self.target(raw, what, overwrite=overwrite)
        if scheme in OBJECT_SCHEMES:
            self.object_options(raw, options, what)
            return raw
        raise BadInput(
            f"{what} {raw!r}: exports are written to a local path inside the allowed folders or an "
            f"s3:// URI, not to a {scheme}:// location",
            what,
        )
