"""The control plane's state: the store, the root folder, who owns the server, the area managers.

One :class:`Platform` lives in the Jupyter server (or in ``pai server``). Handlers reach it
through the request; tests build one directly on a temporary folder.
"""

from __future__ import annotations

import getpass
import logging
import os
import threading
from pathlib import Path
from typing import Any

from jupyter_server.auth.identity import IdentityProvider, PasswordIdentityProvider
from sqlalchemy.engine import make_url

from pai_lab.pipelines import lifecycle as pipelines_lifecycle
from pai_lab.serving import lifecycle as serving_lifecycle
from pai_lab.store import Store
from pai_lab.training import lifecycle as training_lifecycle

log = logging.getLogger("pai_lab")

# The areas with work to do once the server runs, as (name, module with on_start(platform)).
LIFECYCLES = (("training", training_lifecycle), ("serving", serving_lifecycle), ("pipelines", pipelines_lifecycle))


def default_owner() -> str:
    try:
        return getpass.getuser()
    except Exception:  # noqa: BLE001 - no passwd entry (some containers)
        return "owner"


def _create_private(database_url: str) -> None:
    """Create a SQLite store's file as 0600 before SQLite does (its -wal and -shm files take the
    database's mode), so the store is never readable by other users, whatever the umask."""
    if not database_url.startswith("sqlite:///"):
        return
    path = database_url[len("sqlite:///") :].split("?", 1)[0]
    if not path or path == ":memory:" or os.path.exists(path):
        return
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        pass
    os.chmod(path, 0o600)


class Platform:
    def __init__(
        self,
        root_dir: str | Path,
        database_url: str | None = None,
        owner: str | None = None,
        settings: dict[str, Any] | None = None,
    ):
        self.root_dir = Path(root_dir).resolve()
        self.state_dir = self.root_dir / ".pai_lab"
        # the state holds the owner's token, service tokens and stored secrets: the server's OS user only
        self.state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(self.state_dir, 0o700)
        self.database_url = database_url or f"sqlite:///{self.state_dir / 'pai.db'}"
        _create_private(self.database_url)
        self.owner = owner or default_owner()
        self.settings = dict(settings or {})
        self.store = Store(self.database_url)
        self.managers: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._joined: set[str] = set()

    def start(self) -> Platform:
        from pai_lab import workspaces

        self.store.migrate()
        with self.store.transaction() as session:
            workspaces.ensure_default_workspace(session, self.owner)
        shown = make_url(self.store.url).render_as_string(hide_password=True)  # a PostgreSQL password stays out of logs
        log.info("pai_lab: store %s ready, root %s", shown, self.root_dir)
        return self

    def actor_for(self, user, identity_provider=None) -> str:
        """The pai_lab user name for an authenticated Jupyter user.

        A single-user server's stock identity provider invents a random anonymous name per
        request; there is only one person behind it, the server's owner.
        """
        if user is None:
            return ""
        if type(identity_provider) in (IdentityProvider, PasswordIdentityProvider):
            return self.owner
        name = getattr(user, "username", None) or str(user)
        role = self.settings.get("default_member_role")
        if role and name != self.owner and name not in self._joined:
            self._join_default(name, role)
        return name

    def _join_default(self, username: str, role: str) -> None:
        """Multi-user servers may let every new user into ``default`` with one configured role."""
        from pai_lab.workspaces.service import DEFAULT_WORKSPACE, join_workspace

        with self.store.transaction() as session:
            join_workspace(session, DEFAULT_WORKSPACE, username, role, added_by=self.owner)
        self._joined.add(username)

    def provide(self, name: str, manager) -> None:
        """Install the area's manager ahead of use: the app builds the configured backends itself."""
        with self._lock:
            self.managers[name] = manager

    def manager(self, name: str, factory):
        """The area's long-lived manager: the one provided, else created by ``factory(platform)`` on first use."""
        with self._lock:
            if name not in self.managers:
                self.managers[name] = factory(self)
            return self.managers[name]

    async def start_background(self) -> None:
        """Once the server's event loop runs: each area's ``lifecycle.on_start(platform)``
        (reconcile jobs that were running, bring services back)."""
        for area, module in LIFECYCLES:
            try:
                result = module.on_start(self)
                if hasattr(result, "__await__"):
                    await result
            except Exception:
                log.error("pai_lab: starting %s failed", area, exc_info=True)

    async def stop(self) -> None:
        for name, manager in list(self.managers.items()):
            close = getattr(manager, "close", None)
            if close is None:
                continue
            try:
                result = close()
                if hasattr(result, "__await__"):
                    await result
            except Exception:
                log.warning("pai_lab: %s did not close cleanly", name, exc_info=True)
        self.store.dispose()
