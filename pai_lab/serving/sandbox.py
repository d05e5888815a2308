"""A service's instances run a member's code (a python processor, a SavedModel's file ops), so they run in
the sandbox job ranks run in, under the same rule (:mod:`pai_lab.security.sandbox`): on a server with
more than one user, or with ``PaiLabApp.job_sandbox='bubblewrap'``.

In the sandbox an instance sees the system and Python read-only, the allowed roots read-only with the
state folder hidden, its own model, processor and model file read-only (shown again when they lie in the
state folder: a registered job model, the model cache), and only its socket folder writable; its
environment carries none of the server's credentials, sandbox or not.

The control plane decides (:func:`plan`, pushed with the desired state); the gateway builds the command
line (:func:`instance_argv`) and finds the instance's own process inside it (:func:`instance_pid`).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from pai_lab.security.sandbox import (
    SERVICES,
    base_plan,
    for_worker,
    sandbox_required,
    sandboxed_argv,
    scrub,
    server_users,
    unavailable_message,
    without_cloud_credentials,
    worker_settings,
)

# the keys of a processor's resolved config that name what its instance reads
_READS = ("model_dir", "processor_dir", "model_file")


# ---------------------------------------------------------------- the control plane


def plan(platform, session) -> dict | None:
    """The sandbox of this server's instances: None (none), ``{"unavailable": why}`` (one is needed and
    bubblewrap cannot run: instances fail with the reason), or the plan of
    :func:`pai_lab.security.sandbox.base_plan`. Either carries the mode this server resolved (``bubblewrap``:
    it needs the sandbox), for instances on a resource group's workers: each finds its own bubblewrap, or
    refuses to start the instance without one."""
    from pai_lab.errors import Conflict
    from pai_lab.security.sandbox import check_sandbox_available

    settings = getattr(platform, "settings", {}) or {}
    users = server_users(session)
    if not sandbox_required(settings, users):
        return None
    remote = worker_settings(settings, users)
    try:
        return {**base_plan(platform, check_sandbox_available(settings, users, SERVICES)), **remote}
    except Conflict:
        return {**base_plan(platform, ""), **remote, "unavailable": unavailable_message(settings, users, SERVICES)}


def check(platform, session) -> None:
    """A 409 naming ``job_sandbox`` when this server's instances need the sandbox and cannot have it,
    before a service is created or changed."""
    from pai_lab.security.sandbox import sandbox_for

    sandbox_for(session, getattr(platform, "settings", {}) or {}, SERVICES)


def apply(state: dict, sandbox: dict | None) -> dict:
    """The desired state with each service's sandbox; a change of sandbox is a new revision, so running
    instances roll over to the new one. A service on a resource group's Dask workers gets the plan as sent
    to a worker (:func:`pai_lab.security.sandbox.for_worker`)."""
    if sandbox is None:
        return state
    for service in state["services"]:
        own = for_worker(sandbox) if service.get("placement") else sandbox
        mark = hashlib.sha1(json.dumps(own, sort_keys=True).encode()).hexdigest()
        service["sandbox"] = own
        service["revision"] = hashlib.sha1(f"{service['revision']}|{mark}".encode()).hexdigest()
    return state


# ---------------------------------------------------------------- the gateway


def instance_env() -> dict[str, str]:
    """An instance's environment: the gateway's, without any server credential (the gateway's secret and
    the server's cloud credentials included, the SDKs' default files pointed at nothing)."""
    return without_cloud_credentials(scrub(dict(os.environ)))


def instance_argv(sandbox: dict | None, argv: list[str], config: dict, sockets_dir: Path | None) -> list[str]:
    """``argv`` as the instance is started: as it is without a sandbox, else wrapped in bubblewrap with
    what the instance reads shown read-only and its socket folder (when it has one) writable."""
    if not sandbox:
        return argv
    if "unavailable" in sandbox:
        from pai_lab.serving.gateway.errors import LoadFailed

        raise LoadFailed(sandbox["unavailable"], True)  # restarting cannot help: an operator must act
    reads = [str(config[k]) for k in _READS if config.get(k)]
    own = {
        **sandbox,
        "shown_again": [*sandbox["shown_again"], *reads],
        "writable": [*sandbox["writable"], *([str(sockets_dir)] if sockets_dir else [])],
    }
    cwd = str(config.get("processor_dir") or "/")
    wrapped = sandboxed_argv(own, argv, cwd, [])
    # the gateway's own pai_lab, whatever folder the instance starts in (an editable install may be found
    # only through the gateway's working folder)
    import pai_lab

    here = str(Path(pai_lab.__file__).resolve().parents[1])
    path = os.pathsep.join(p for p in (here, os.environ.get("PYTHONPATH", "")) if p)
    cut = wrapped.index("--")
    return [*wrapped[:cut], "--setenv", "PYTHONPATH", path, *wrapped[cut:]]


def instance_pid(proc) -> int:
    """The pid of the instance's own process: ``proc``'s, or inside the sandbox, the one bubblewrap
    started (what memory, CPU and ``eascmd w`` are about)."""
    import psutil

    try:
        for child in psutil.Process(proc.pid).children(recursive=True):
            # bubblewrap's own processes name the module too, after their options: the instance starts with it
            if child.cmdline()[1:3] == ["-m", "pai_lab.serving.instance"]:
                return child.pid
    except psutil.Error:
        pass
    return proc.pid
