"""The control plane: a jupyter_server ExtensionApp that owns the store and the area managers.

Loaded into JupyterLab's server automatically (``jupyter-config``), or run on its own as
``pai server`` for scripts, CI and headless use.
"""

from __future__ import annotations

import gc
import json
import os
from pathlib import Path
from typing import Any

from jupyter_server.extension.application import ExtensionApp
from traitlets import Dict, Float, Int, List, Type, Unicode, default

from pai_lab._version import __version__
from pai_lab.platform import Platform, default_owner
from pai_lab.serving.manager import ServingManager
from pai_lab.training.manager import TrainingManager

# The settings users set as PaiLabApp.<name> that belong to a manager, and the manager's trait for each.
# Set on PaiLabApp they win over the manager's own (c.TrainingManager.n_workers), as before.
TRAINING_SETTINGS = {
    "dask_scheduler_address": "dask_scheduler_address",
    "n_workers": "n_workers",
    "threads_per_worker": "threads_per_worker",
    "memory_limit": "memory_limit",
    "resource_groups": "resource_groups",
}
SERVING_SETTINGS = {"serving_port": "port", "serving_metrics_token": "metrics_token"}


class PaiLabApp(ExtensionApp):
    name = "pai_lab"
    description = "pai_lab control plane"
    version = __version__
    load_other_extensions = True

    root_dir = Unicode(
        "",
        config=True,
        help="Folder that holds pai_lab's state (.pai_lab/) and the workspaces' files. "
        "Default: $PAI_LAB_ROOT, else the Jupyter server's root_dir.",
    )
    database_url = Unicode(
        "",
        config=True,
        help="SQLAlchemy URL of the metadata store. Default: sqlite:///<root>/.pai_lab/pai.db (WAL mode). "
        "PostgreSQL works too: postgresql+psycopg://user:pass@host/db",
    )
    owner = Unicode(config=True, help="The user who owns this server and the default workspace.")
    default_member_role = Unicode(
        "",
        config=True,
        help="If set, any other authenticated user joins the default workspace with this role on first call.",
    )
    allowed_roots = List(
        Unicode(), config=True, help="Folders besides root_dir from which local datasets may be registered."
    )
    allowed_url_prefixes = List(
        Unicode(),
        config=True,
        help="http(s) URL prefixes the server may fetch item media from (e.g. "
        "https://data.example.com/public/). Default: none.",
    )
    allowed_object_prefixes = List(
        Unicode(),
        config=True,
        help="s3:// or oss:// prefixes the server may read and write with its own credentials (its AWS_* "
        "variables, profiles, instance role) for members who give none (e.g. s3://public-data/). "
        "Elsewhere a member's or workspace's storage options must carry credentials. Default: none.",
    )
    training_manager_class = Type(
        default_value=TrainingManager,
        klass=TrainingManager,
        config=True,
        help="The training backend: a TrainingManager subclass (jobs on Dask by default).",
    )
    serving_manager_class = Type(
        default_value=ServingManager,
        klass=ServingManager,
        config=True,
        help="The serving backend: a ServingManager subclass (a local gateway process by default).",
    )
    dask_scheduler_address = Unicode(
        "",
        config=True,
        help="Address of an existing Dask scheduler (tcp://host:8786). Empty: a LocalCluster started on demand. "
        "Same as TrainingManager.dask_scheduler_address (this one wins when set).",
    )
    resource_groups = Dict(
        config=True,
        help="More resource groups beside `default`: name -> Dask scheduler address (`pai server --resource-group "
        "NAME=tcp://host:8786`). Same as TrainingManager.resource_groups (this one wins when set).",
    )
    n_workers = Int(
        2,
        config=True,
        help="Workers of the LocalCluster started when no scheduler is configured. "
        "Same as TrainingManager.n_workers (this one wins when set).",
    )
    threads_per_worker = Int(
        0,
        config=True,
        help="Threads per LocalCluster worker; each job rank holds one while it "
        "runs. 0: the machine's cores split between the workers. Same as "
        "TrainingManager.threads_per_worker (this one wins when set).",
    )
    memory_limit = Unicode(
        "auto",
        config=True,
        help="Memory limit per LocalCluster worker. Same as TrainingManager.memory_limit (this one wins when set).",
    )
    serving_port = Int(
        0,
        config=True,
        help="Port of the serving gateway (0: the port the last gateway had, "
        "kept in the state folder, when it is free, else a free port). Same as ServingManager.port "
        "(this one wins when set).",
    )
    serving_metrics_token = Unicode(
        config=True,
        help="When set, the serving gateway's /metrics answers only `Authorization: Bearer <token>`. "
        "Default: $PAI_LAB_METRICS_TOKEN, else open. Same as ServingManager.metrics_token (this "
        "one wins when set).",
    )
    preview_prepare_items = Int(
        1000,
        config=True,
        help="Images of a new labeling task prepared for the labelers in the background (decoded once and kept "
        "at view sizes). Later packages are prepared when claimed. 0: only when claimed.",
    )
    preview_cache_bytes = Int(2 << 30, config=True, help="Disk space for the prepared images (oldest removed first).")
    order_embedding_wait = Float(
        config=True,
        help="Seconds an image order (typical, cluster_margin) waits for its task's image embedding before it "
        "answers 503 with Retry-After while the embedding is computed on; the client and `pai label order` ask "
        "again and show the progress. Default: $PAI_LAB_ORDER_EMBEDDING_WAIT, else 20.",
    )
    max_job_ranks = Int(
        16,
        config=True,
        help="Most ranks (chief, masters, workers and PS together) one job may "
        "ask for; a job above it is refused at once with 400.",
    )
    max_service_instances = Int(
        64,
        config=True,
        help="Most instances one service may ask for "
        "(metadata.instance); a create or update above it is refused at once with 400.",
    )
    max_request_bytes = Int(
        64 << 20, config=True, help="Largest request body pai_lab's REST routes accept; larger ones get 413."
    )
    job_sandbox = Unicode(
        "auto",
        config=True,
        help="Local job ranks in a bubblewrap sandbox: 'auto' (once the server has more than one user), "
        "'bubblewrap' (always) or 'off'. A server that needs one and has no working bubblewrap refuses "
        "local jobs with 409. Ranks on a remote Dask cluster run under their workers' OS users instead.",
    )
    bubblewrap_path = Unicode("bwrap", config=True, help="The bubblewrap program the sandbox runs.")

    runtime_file = Unicode("", help="server.json written by `pai server`; empty inside JupyterLab.")
    platform = None  # set by initialize_settings; None when the control plane could not start
    load_error = ""

    @default("order_embedding_wait")
    def _default_order_embedding_wait(self):
        value = os.environ.get("PAI_LAB_ORDER_EMBEDDING_WAIT") or "20"
        try:
            return max(0.0, float(value))
        except ValueError:
            raise ValueError(f"PAI_LAB_ORDER_EMBEDDING_WAIT must be a number of seconds, got {value!r}") from None

    @default("owner")
    def _default_owner(self):
        return os.environ.get("PAI_LAB_OWNER") or default_owner()

    def resolved_root(self) -> Path:
        root = self.root_dir or os.environ.get("PAI_LAB_ROOT") or self.serverapp.root_dir
        return Path(root).expanduser().resolve()

    def initialize_settings(self) -> None:
        settings = {
            "allowed_roots": list(self.allowed_roots),
            "allowed_url_prefixes": list(self.allowed_url_prefixes),
            "allowed_object_prefixes": list(self.allowed_object_prefixes),
            "default_member_role": self.default_member_role,
            "preview_prepare_items": self.preview_prepare_items,
            "preview_cache_bytes": self.preview_cache_bytes,
            "order_embedding_wait": self.order_embedding_wait,
            "max_job_ranks": self.max_job_ranks,
            "max_service_instances": self.max_service_instances,
            "max_request_bytes": self.max_request_bytes,
            "job_sandbox": self.job_sandbox,
            "bubblewrap_path": self.bubblewrap_path,
        }
        try:
            self.platform = Platform(self.resolved_root(), self.database_url or None, self.owner, settings).start()
            self.build_managers(self.platform)
        except Exception as exc:
            self.platform, self.load_error = None, f"{type(exc).__name__}: {exc}"
            self.log.critical("pai_lab cannot start: %s", self.load_error, exc_info=True)
            if self.serverapp.reraise_server_extension_failures:
                raise  # `pai server`: stop with the reason
            return  # inside JupyterLab: the rest of Jupyter works; pai_lab's routes answer 503 with the reason
        self.settings["pai_lab_platform"] = self.platform
        self.log.info(
            "pai_lab %s: root %s, store %s", __version__, self.platform.root_dir, self.platform.store.url.split("@")[-1]
        )

    def _given(self, names: dict[str, str]) -> dict:
        """The PaiLabApp settings of ``names`` that the configuration sets, under the manager's trait names."""
        given = self.config.get(type(self).__name__, {})
        return {trait: getattr(self, name) for name, trait in names.items() if name in given}

    def build_managers(self, platform: Platform) -> None:
        """The configured training and serving backends, children of this app in the configuration."""
        platform.provide(
            "training", self.training_manager_class(platform, parent=self, **self._given(TRAINING_SETTINGS))
        )
        platform.provide("serving", self.serving_manager_class(platform, parent=self, **self._given(SERVING_SETTINGS)))

    def initialize_handlers(self) -> None:
        from pai_lab.server import handlers

        if self.platform is None:
            from pai_lab.server.base import UnavailableHandler
            from pai_lab.server.routing import API_PREFIX

            self.handlers.append((API_PREFIX + "/.*", UnavailableHandler, {"reason": self.load_error}))
            return
        self.handlers.extend(handlers(self.platform))

    async def _start_jupyter_server_extension(self, serverapp) -> None:
        if self.platform is None:
            return
        if self.runtime_file:
            self.write_runtime_file()
        # where a job's ranks reach pai_lab's API with their job token
        self.platform.settings["server_url"] = self.serverapp.connection_url
        start = getattr(self.platform, "start_background", None)
        if start:
            await start()

    @classmethod
    def control_plane(
        cls,
        root: str | Path,
        *,
        token: str,
        owner: str,
        ip: str = "127.0.0.1",
        port: int = 0,
        users: dict[str, str] | None = None,
        **settings: Any,
    ) -> PaiLabApp:
        """A lean Jupyter server that runs the control plane alone on ``root`` (what `pai server` starts):
        named-token logins (``owner`` with ``token``, ``users`` with theirs), ``settings`` as PaiLabApp traits
        (a list repeats the option). Raises when the control plane cannot load (a damaged store...)."""
        root = Path(root)
        argv = [
            f"--ServerApp.root_dir={root}",
            f"--ServerApp.ip={ip}",
            f"--ServerApp.port={port or 0}",
            "--ServerApp.port_retries=0" if port else "--ServerApp.port_retries=50",
            "--ServerApp.open_browser=False",
            "--ServerApp.allow_root=True",  # a headless control plane, often in a container
            # the control plane is the whole server: if it cannot load, stop with the reason instead of
            # serving 404 on every route
            "--ServerApp.reraise_server_extension_failures=True",
            "--ServerApp.identity_provider_class=pai_lab.server.identity.NamedTokenIdentityProvider",
            f"--IdentityProvider.token={token}",
            f"--NamedTokenIdentityProvider.owner_name={owner}",
            f"--{cls.__name__}.root_dir={root}",
            f"--{cls.__name__}.owner={owner}",
        ]
        for name, value in settings.items():
            for one in value if isinstance(value, (list, tuple)) else [value]:
                if one is not None and one != "":
                    argv.append(f"--{cls.__name__}.{name}={one}")
        cls.load_other_extensions = False  # a lean server: the control plane only
        serverapp = cls.initialize_server(argv=argv)
        if users:
            serverapp.identity_provider.user_tokens = dict(users)
        app = next(a for a in serverapp.extension_manager.extension_apps[cls.name] if isinstance(a, cls))
        app.runtime_file = str(root / ".pai_lab" / "server.json")
        return app

    def serve(self, stop_with: int | None = None) -> None:
        """Run the server until it is stopped (or, with ``stop_with``, until that process ends)."""
        # Everything loaded so far lives as long as the server: keep it out of the collector's full
        # passes, which otherwise stall a request for 100+ ms every few thousand calls.
        gc.collect()
        gc.freeze()
        if stop_with:
            self._stop_with(stop_with)
        try:
            self.serverapp.start()
        finally:
            self.remove_runtime_file()

    def _stop_with(self, pid: int) -> None:
        """Stop the server once process ``pid`` is gone: a script that started it and died without
        stopping it (killed, or a kernel shut down hard) leaves no server behind."""
        import psutil
        from tornado.ioloop import PeriodicCallback

        try:
            born = psutil.Process(pid).create_time()
        except psutil.Error:
            raise ProcessLookupError(f"no process {pid}") from None
        serverapp = self.serverapp

        def check() -> None:
            try:
                if psutil.Process(pid).create_time() == born:  # not a new process that took the same id
                    return
            except psutil.Error:
                pass
            serverapp.log.info("pai server: process %s ended; stopping", pid)
            watch.stop()
            serverapp.stop()

        watch = PeriodicCallback(check, 1000)
        watch.start()

    def write_runtime_file(self) -> None:
        path = Path(self.runtime_file)
        path.parent.mkdir(parents=True, exist_ok=True)
        info = {
            "url": self.serverapp.connection_url,
            "token": self.serverapp.identity_provider.token,
            "pid": os.getpid(),
            "root_dir": str(self.platform.root_dir),
            "version": __version__,
        }
        tmp = path.with_suffix(".tmp")
        tmp.unlink(missing_ok=True)
        # it holds the owner's token: 0600 from its creation on, never readable for a moment
        with os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as fh:
            fh.write(json.dumps(info, indent=1))
        os.chmod(tmp, 0o600)
        tmp.replace(path)

    def remove_runtime_file(self) -> None:
        if self.runtime_file:
            try:
                path = Path(self.runtime_file)
                if path.exists() and json.loads(path.read_text()).get("pid") == os.getpid():
                    path.unlink()
            except (OSError, ValueError):
                pass

    async def stop_extension(self) -> None:
        self.remove_runtime_file()
        platform = getattr(self, "platform", None)  # None when the extension failed to load
        if platform is not None:
            await platform.stop()
