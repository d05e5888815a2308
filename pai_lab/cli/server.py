"""`pai server`: the control plane on its own, without JupyterLab (see PaiLabApp.control_plane)."""

from __future__ import annotations

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
    p.add_argument(
        "--user",
        action="append",
        default=[],
        metavar="NAME=TOKEN",
        help="a further user and their token (repeatable), for role-based sharing",
    )
    p.add_argument("--database-url", default=None, help="SQLAlchemy URL of the store")
    p.add_argument("--dask-scheduler", default=None, help="address of an existing Dask scheduler")
    p.add_argument(
        "--resource-group",
        action="append",
        default=[],
        metavar="NAME=ADDRESS",
        help="a further resource group: a name and its Dask scheduler's address (repeatable); a workspace's "
        "Owner or Administrator chooses among them",
    )
    p.add_argument(
        "--allowed-root",
        action="append",
        default=[],
        metavar="FOLDER",
        help="a folder besides --root that members may name as data, code or models (repeatable)",
    )
    p.add_argument(
        "--allowed-url-prefix",
        action="append",
        default=[],
        metavar="PREFIX",
        help="an http(s) URL prefix the server may fetch item media from (repeatable; default none)",
    )
    p.add_argument(
        "--allowed-object-prefix",
        action="append",
        default=[],
        metavar="PREFIX",
        help="an s3:// or oss:// prefix the server may read with its own credentials for members who give "
        "none (repeatable; default none)",
    )
    p.add_argument(
        "--job-sandbox",
        choices=("auto", "bubblewrap", "off"),
        default=None,
        help="run local job ranks in a bubblewrap sandbox: auto (default: once there is more than "
        "one user), always, or off",
    )
    p.add_argument(
        "--stop-with",
        type=int,
        default=None,
        metavar="PID",
        help="stop when process PID ends (pai_lab.connect(start=True) passes its own)",
    )


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
    groups = []
    for item in args.resource_group:
        name, sep, address = item.partition("=")
        if not sep or not name or not address:
            raise UsageError(f"pai server: --resource-group expects NAME=tcp://host:port, got {item!r}")
        groups.append(f"{name}={address}")
    try:
        app = PaiLabApp.control_plane(
            root,
            ip=args.ip,
            port=args.port,
            users=users,
            owner=args.owner or os.environ.get("PAI_LAB_OWNER") or default_owner(),
            token=args.token or os.environ.get("PAI_LAB_TOKEN") or secrets.token_hex(24),
            database_url=args.database_url,
            dask_scheduler_address=args.dask_scheduler,
            resource_groups=groups,
            allowed_roots=[Path(folder).expanduser().resolve() for folder in args.allowed_root],
            allowed_url_prefixes=args.allowed_url_prefix,
            allowed_object_prefixes=args.allowed_object_prefix,
            job_sandbox=args.job_sandbox,
        )
    except Exception as exc:  # noqa: BLE001 - whatever stops it, the user gets the reason in one line
        raise UsageError(f"pai server: the control plane cannot start: {type(exc).__name__}: {exc}") from None
    ctx.say(f"pai_lab server for {root} at {app.serverapp.connection_url} (runtime file {app.runtime_file})")
    try:
        app.serve(stop_with=args.stop_with)
    except ProcessLookupError:
        raise UsageError(f"pai server: --stop-with {args.stop_with}: no such process") from None
    return Result()
