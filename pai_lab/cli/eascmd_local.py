"""`pai eascmd` verbs about the client and the cluster: config and profiles (-c), upload, test, resource.

    pai eascmd config -i AK_ID -k AK_SECRET -e ENDPOINT [-w WORKSPACE]   saved to ~/.eas/config (0600)
    pai eascmd -c ~/.eas/other.conf resource desc <resource>              another profile
    pai eascmd upload model.tar.gz [--prefix models]                      the model_path to use
    pai eascmd test <service> -d '{"values": [1, 2]}'                     one request through the endpoint
    pai eascmd resource ls | desc <id> | li <id> | network <id> -s cfg.json
    pai eascmd resource add <id> --scheduler tcp://host:8786 | rm <id> | use <id> -w WORKSPACE

A profile holds an endpoint and a workspace. The AccessKey pair is kept (a seed script written for
the cloud runs unchanged) but nothing here needs it: the server's own token authenticates. An
endpoint that is a URL (http://host:port) names the pai_lab server to use; a cloud host name is kept
and ignored.
"""

from __future__ import annotations

import sys
from pathlib import Path

from pai_lab.cli import profiles
from pai_lab.cli.base import Result, UsageError, read_spec_file

DEFAULT_PROFILE = Path("~/.eas/config")
RESOURCE_LS = ["RESOURCENAME", "CLUSTERID", "INSTANCECOUNT", "GPUCOUNT", "CPUCOUNT", "OWNERUID", "CREATETIME", "STATUS"]
RESOURCE_LI = ["INSTANCENAME", "IP", "CPU", "MEMORY", "GPU", "BUSYRANKS", "STATUS", "RANKS"]
NETWORK_ACTIONS = ("create", "delete")


# ----------------------------------------------------------------- profiles


def profile_path(args) -> Path:
    return Path(getattr(args, "config_file", None) or DEFAULT_PROFILE).expanduser()


def read_profile(args) -> dict:
    """The profile's keys; {} when the default one was never written. A -c file must exist."""
    path = profile_path(args)
    if not path.is_file():
        if getattr(args, "config_file", None):
            raise UsageError(
                f"-c {args.config_file}: no such profile; write one with "
                f"`pai eascmd -c {args.config_file} config -i ID -k SECRET -e ENDPOINT`"
            )
        return {}
    return profiles.read(path)


def apply_profile(ctx, args) -> None:
    """Before any verb: the profile's workspace is the default, its endpoint URL the server."""
    profile = read_profile(args)
    args.workspace = (
        getattr(args, "workspace", None) or getattr(args, "eas_workspace", None) or profile.get("workspace") or None
    )
    profiles.use_endpoint(ctx, profile)


def config(ctx, args) -> Result:
    path = profile_path(args)
    profiles.write(
        path,
        {
            "access_id": args.access_id,
            "access_key": args.access_key,
            "endpoint": args.endpoint or "",
            "workspace": args.workspace or args.eas_workspace or "",
        },
    )
    return Result(
        data={"path": str(path), "endpoint": args.endpoint or "", "workspace": args.workspace or ""},
        text=f"Configuration saved to: {path}",
    )


# ----------------------------------------------------------------- test


def _body(data: str) -> bytes:
    """-d TEXT sends the text; -d @FILE sends the file's bytes (as curl does)."""
    if data.startswith("@"):
        try:
            return Path(data[1:]).expanduser().read_bytes()
        except OSError as exc:
            raise UsageError(f"-d {data}: cannot read the file: {exc.strerror}") from None
    return data.encode("utf-8")


def test(ctx, args) -> Result:
    body = _body(args.data)  # a file that cannot be read fails before the server is asked
    svc = ctx.workspace(args.workspace).services.get(args.name)
    status, content = svc._call("POST", body, args.content_type)
    text = content.decode("utf-8", errors="replace")
    if status >= 400:
        print(f"error: service {args.name} answered {status}: {text.strip()}", file=sys.stderr)
        return Result(data={"status": status, "body": text}, exit_code=1)
    return Result(data={"status": status, "body": text}, text=text)


# ----------------------------------------------------------------- upload


def upload(ctx, args) -> Result:
    """The manual's three lines; the target path is the model_path to put in the service JSON."""
    from pai_lab.errors import ServerNotFound, from_response

    source = Path(args.file).expanduser()
    if not source.is_file():
        raise UsageError(f"upload: {args.file!r} is not a file (upload one archive: tar.gz, zip...)")
    path = "/".join(p for p in ((args.prefix or "").strip("/"), source.name) if p)
    ws = ctx.workspace(args.workspace)
    http = ws.http
    try:
        with source.open("rb") as fh:
            resp = http.session.put(
                http.url(ws._path("/model-store")),
                params={"path": path},
                data=fh,
                headers={"Content-Type": "application/octet-stream"},
                timeout=600,
            )
    except OSError as exc:  # requests' connection errors are OSErrors too
        raise ServerNotFound(f"cannot upload to the pai_lab server at {http.info.url}: {exc}") from None
    if resp.status_code >= 400:
        try:
            body = resp.json()
        except ValueError:
            body = {"error": {"message": resp.text.strip()[:500] or resp.reason}}
        raise from_response(resp.status_code, body)
    stored = resp.json()
    ctx.say(f"[OK] oss endpoint:    [{http.info.url}]")
    ctx.say(f"[OK] oss target path: [{stored['model_path']}]")
    return Result(data=stored, text=f"Succeed: Total num: 1, size: {stored['size']:,}. OK num: 1(upload 1 files).")


# ----------------------------------------------------------------- resource groups


def _groups(ctx, args) -> list[dict]:
    """The server's resource groups (`default` and the operator's), each with its workers as seen now."""
    groups = ctx.client.resource_groups.list()
    return [
        {
            "name": g.name,
            "cluster": g.scheduler_address,
            "source": g.source,
            "instances": len(g.workers),
            "gpus": g.gpus,
            "cpus": g.cores,
            "memory": g.memory,
            "owner": g.created_by,
            "created": g.created_at.strftime("%Y-%m-%d %H:%M:%S") if g.created_at else "",
            "status": g.status,
            "message": g.message,
            "dashboard": g.dashboard_link or "",
            "workspaces": g.workspaces,
            "workers": g.workers,
            "ranks": g.ranks,
        }
        for g in groups
    ]


def _group(ctx, args) -> dict:
    groups = _groups(ctx, args)
    for group in groups:
        if group["name"] == args.resource:
            return group
    names = ", ".join(g["name"] for g in groups)
    raise UsageError(f"resource {args.resource!r} does not exist; `pai eascmd resource ls` lists them ({names})")


def _plain(group: dict) -> dict:
    return {k: v for k, v in group.items() if k not in ("workers", "ranks")}


def resource_ls(ctx, args) -> Result:
    from pai_lab.cli.eascmd import ascii_table

    groups = _groups(ctx, args)
    rows = [
        [g["name"], g["cluster"], g["instances"], g["gpus"], g["cpus"], g["owner"], g["created"], g["status"]]
        for g in groups
    ]
    return Result(data=[_plain(g) for g in groups], text=ascii_table(rows, RESOURCE_LS), frame=True)


def resource_desc(ctx, args) -> Result:
    from pai_lab.cli.eascmd import ascii_table

    g = _group(ctx, args)
    fields = [
        ("ResourceName", g["name"]),
        ("Region", "local"),
        ("CpuCount", g["cpus"]),
        ("GpuCount", g["gpus"]),
        ("Memory", f"{g['memory'] // 2**20}M" if g["memory"] else "unlimited"),
        ("InstanceCount", g["instances"]),
        ("RankCount", len(g["ranks"])),
        ("CreateTime", g["created"]),
        ("LastStatus", g["status"]),
        ("Message", g["message"]),
        ("Scheduler", g["cluster"]),
        ("Source", g["source"]),
        ("Workspaces", ",".join(g["workspaces"])),
        ("Dashboard", g["dashboard"]),
        ("VpcId", ""),
        ("VSwitchId", ""),
        ("SecurityGroupId", ""),
        ("DestinationCIDR", ""),
        ("AuxVSwitchList", []),
    ]
    return Result(data=_plain(g), text=ascii_table([[k, v] for k, v in fields], ["FIELD", "VALUE"]))


def resource_li(ctx, args) -> Result:
    """The group's workers (EAS's instances of a resource group), each with the ranks running on it."""
    from pai_lab.cli.eascmd import ascii_table

    group = _group(ctx, args)
    on: dict[str, list[str]] = {}
    for rank in group["ranks"]:
        on.setdefault(rank.worker, []).append(rank.pod)
    rows, data = [], []
    for w in group["workers"]:
        pods = on.get(w.address, [])
        rows.append(
            [
                w.name,
                w.address,
                w.cores,
                f"{w.memory // 2**20}M" if w.memory else "unlimited",
                w.gpus,
                w.busy_ranks,
                "Ready",
                ",".join(pods),
            ]
        )
        data.append({**w.model_dump(), "ranks": pods})
    return Result(data=data, text=ascii_table(rows, RESOURCE_LI), frame=True)


def resource_add(ctx, args) -> Result:
    """The operator adds a group by its Dask scheduler's address."""
    group = ctx.client.resource_groups.add(args.resource, args.scheduler)
    ctx.say(f"[OK] Resource [{group.name}] at [{group.scheduler_address}] is {group.status}")
    return Result(data=group)


def resource_rm(ctx, args) -> Result:
    ctx.client.resource_groups.remove(args.resource)
    ctx.say(f"[OK] Resource [{args.resource}] was removed")
    return Result(data={"removed": args.resource})


def resource_use(ctx, args) -> Result:
    """A workspace's Owner or Administrator chooses its group; its next jobs run there."""
    ws = ctx.workspace(args.workspace)
    name = ws.set_resource_group(args.resource)
    ctx.say(f"[OK] Workspace [{ws.name}] runs its jobs on resource [{name}]")
    return Result(data={"workspace": ws.name, "resource_group": name})


def resource_network(ctx, args) -> Result:
    """Validated and answered: a local cluster has no VPC to connect, so nothing changes."""
    _group(ctx, args)
    cfg = read_spec_file(args.spec_file, "network config")
    action = cfg.get("Action")
    if action not in NETWORK_ACTIONS:
        raise UsageError(f"network config {args.spec_file!r}: Action must be create or delete, got {action!r}")
    if action == "create":
        for key in ("VSwitchId", "SecurityGroupId"):
            if not cfg.get(key):
                raise UsageError(f"network config {args.spec_file!r}: {key} is required with Action create")
    return Result(
        data={"resource": args.resource, "action": action, "changed": False},
        text=f"[OK] Resource [{args.resource}]: network {action} accepted; the local cluster shares this "
        "machine's network, so there is no VPC connection to change",
    )


# ----------------------------------------------------------------- wiring


def register_local(verb, verbs) -> None:
    """Adds config, test and resource to eascmd's verbs; ``verb`` is eascmd's own helper."""
    p = verb("config", config, "save a profile: AccessKey (kept, not needed locally), endpoint, workspace")
    p.add_argument("-i", dest="access_id", required=True, help="AccessKey ID (kept in the profile)")
    p.add_argument("-k", dest="access_key", required=True, help="AccessKey Secret (kept in the profile, mode 0600)")
    p.add_argument("-e", dest="endpoint", default="", help="a pai_lab server URL, or the cloud endpoint (kept)")

    p = verb("upload", upload, "upload a model or processor package; prints the model_path to use")
    p.add_argument("file")
    p.add_argument("--prefix", default="", help="a folder in the store to put it in")
    p.add_argument("--inner", action="store_true", help="accepted (PAI-DSW's internal network); no effect here")

    p = verb("test", test, "send one request to a service through its endpoint and print the answer")
    p.add_argument("name")
    p.add_argument("-d", "--data", required=True, help="the request body, or @FILE for a file's bytes")
    p.add_argument("--content-type", default="application/json")

    for name, func, text in (
        ("ls", resource_ls, "list resource groups"),
        ("desc", resource_desc, "describe a resource group"),
        ("li", resource_li, "list a resource group's instances"),
        ("network", resource_network, "check a network config (no VPC here)"),
        ("add", resource_add, "add a resource group by its Dask scheduler (the server's operator)"),
        ("rm", resource_rm, "remove a resource group added with add (the server's operator)"),
        ("use", resource_use, "run a workspace's jobs on a resource group (Owner, Administrator)"),
    ):
        aliases = {"ls": ["list"], "li": ["list_instance"]}.get(name, [])
        p = verbs["resource"](name, func, text, aliases=aliases)
        if name != "ls":
            p.add_argument("resource", help="the RESOURCENAME from `pai eascmd resource ls`")
        if name == "network":
            p.add_argument("-s", dest="spec_file", required=True, help="the network config JSON")
        if name == "add":
            p.add_argument("--scheduler", required=True, help="the Dask scheduler's address, tcp://host:8786")
