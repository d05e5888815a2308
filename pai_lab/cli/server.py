"""`pai server`: the control plane on its own, without JupyterLab."""

from __future__ import annotations

import gc
import os
import secrets
from pathlib import Path

from pai_lab.cli.base import Result, UsageError


def register(sub, add_command) -> None:
    p = add_command(sub, "server", serve, "run the pai_lab control plane without JupyterLab")
    p.add_argument("--root", default=None, help="folder for pai_lab's state and files (default: $PAI_LAB_ROOT or .)")
    p.add_argument("--port", type=int, default=0, help="port to listen on (default: a free one)")
    p.add_argument("--ip", default="127.0.0.1")
    p.add_argument("--token", default=None, help="the owner's token (default: a random one)")
    p.add_argument("--owner", default=None, help="user name the token authenticates as (default: you)")
    p.add_argument("--user", action="append", default=[], metavar="NAME=TOKEN",
                   help="a further user and their token (repeatable), for role-based sharing")
    p.add_argument("--database-url", default=None, help="SQLAlchemy URL of the store")
    p.add_argument("--dask-scheduler", default=None, help="address of an existing Dask scheduler")
    p.add_argument("--allowed-root", action="append", default=[], metavar="FOLDER",
                   help="a folder besides --root that members may name as data, code or models (repeatable)")
    p.add_argument("--allowed-url-prefix", action="append", default=[], metavar="PREFIX",
                   help="an http(s) URL prefix the server may fetch item media from (repeatable; default none)")
    p.add_argument("--job-sandbox", choices=("auto", "bubblewrap", "off"), default=None,
                   help="run local job ranks in a bubblewrap sandbox: auto (default: once there is more than "
                        "one user), always, or off")
    p.add_argument("--stop-with", type=int, default=None, metavar="PID",
                   help="stop when process PID ends (pai_lab.connect(start=True) passes its own)")


def serve(ctx, args) -> Result:
    from pai_lab.app import PaiLabApp
    from pai_lab.platform import default_owner

    root = Path(args.root or os.environ.get("PAI_LAB_ROOT") or ".").expanduser().resolve()
    if not root.is_dir():
        raise UsageError(f"pai server: --root {str(root)!r} is not a folder; create it first")
    users = {}
    for item in args.user:
        name, sep, token = item.partition("=")
        if not sep or not name or not token:
            raise UsageError(f"pai server: --user expects NAME=TOKEN, got {item!r}")
        users[name] = token
    owner = args.owner or os.environ.get("PAI_LAB_OWNER") or default_owner()
    token = args.token or os.environ.get("PAI_LAB_TOKEN") or secrets.token_hex(24)
    argv = [
        f"--ServerApp.root_dir={root}",
        f"--ServerApp.ip={args.ip}",
        f"--ServerApp.port={args.port or 0}",
        "--ServerApp.port_retries=0" if args.port else "--ServerApp.port_retries=50",
        "--ServerApp.open_browser=False",
        "--ServerApp.allow_root=True",  # a headless control plane, often in a container
        # pai server is the control plane: if it cannot load (a damaged store...), stop with the reason
        # instead of serving 404 on every route
        "--ServerApp.reraise_server_extension_failures=True",
        "--ServerApp.identity_provider_class=pai_lab.server.identity.NamedTokenIdentityProvider",
        f"--IdentityProvider.token={token}",
        f"--NamedTokenIdentityProvider.owner_name={owner}",
        f"--PaiLabApp.root_dir={root}",
        f"--PaiLabApp.owner={owner}",
    ]
    if args.database_url:
        argv.append(f"--PaiLabApp.database_url={args.database_url}")
    if args.dask_scheduler:
        argv.append(f"--PaiLabApp.dask_scheduler_address={args.dask_scheduler}")
    for folder in args.allowed_root:
        argv.append(f"--PaiLabApp.allowed_roots={Path(folder).expanduser().resolve()}")
    if args.job_sandbox:
        argv.append(f"--PaiLabApp.job_sandbox={args.job_sandbox}")
    for prefix in args.allowed_url_prefix:
        argv.append(f"--PaiLabApp.allowed_url_prefixes={prefix}")
    PaiLabApp.load_other_extensions = False  # a lean server: the control plane only
    try:
        serverapp = PaiLabApp.initialize_server(argv=argv)
    except Exception as exc:
        raise UsageError(f"pai server: the control plane cannot start: {type(exc).__name__}: {exc}") from None
    if users:
        serverapp.identity_provider.user_tokens = users
    app = serverapp.extension_manager.extension_apps["pai_lab"].pop()
    app.runtime_file = str(root / ".pai_lab" / "server.json")
    ctx.say(f"pai_lab server for {root} at {serverapp.connection_url} (runtime file {app.runtime_file})")
    # Everything loaded so far lives as long as the server: keep it out of the collector's full
    # passes, which otherwise stall a request for 100+ ms every few thousand calls.
    gc.collect()
    gc.freeze()
    if args.stop_with:
        _stop_with(serverapp, args.stop_with)
    try:
        serverapp.start()
    finally:
        app.remove_runtime_file()
    return Result()


def _stop_with(serverapp, pid: int) -> None:
    """Stop the server once process ``pid`` is gone: a script that started it and died without
    stopping it (killed, or a kernel shut down hard) leaves no server behind."""
    import psutil
    from tornado.ioloop import PeriodicCallback

    try:
        born = psutil.Process(pid).create_time()
    except psutil.Error:
        raise UsageError(f"pai server: --stop-with {pid}: no such process") from None

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
