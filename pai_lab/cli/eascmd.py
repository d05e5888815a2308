"""`pai eascmd ...`: the EAS client's verbs, flags and tables, against the local gateway.

pai eascmd create service.json          %%pai eascmd create   (the JSON in the cell)
pai eascmd create -r service.json       blue-green partner <name>_<8 hex>
pai eascmd release <new> -w 30          30% of the original endpoint's traffic to <new>
pai eascmd modify <name> -Dmetadata.instance=3    |   modify <name> -s change.json
pai eascmd version <name> 1 | stop | start | delete | ls | desc | w | dw
pai eascmd autoscale <name> -Dmin=1 -Dmax=4 -Dstrategies.qps=50 | autoscale desc|rm <name>  (eascmd_autoscale.py)
pai eascmd config | test | resource ...  (eascmd_local.py); -c PROFILE and -w WORKSPACE before any verb
"""

from __future__ import annotations

import functools
import json
import sys
import time
import uuid
from datetime import datetime

from pai_lab.cli import eascmd_autoscale, eascmd_local
from pai_lab.cli.base import Result, UsageError, read_spec_file

LS_COLUMNS = ["SERVICENAME", "REGION", "INSTANCE", "CREATETIME", "UPDATETIME", "STATUS", "WEIGHT", "SERVICEPATH"]
W_COLUMNS = ["INSTANCENAME", "INNERIP", "HOSTIP", "STARTAT", "RESTARTS", "STATUS", "READY", "REASON", "LASTSTATE"]
REGION = "local"


def ascii_table(rows: list[list], headers: list[str] | None = None, align_right_first: bool = False) -> str:
    """The manual's MySQL-style boxes."""
    cells = [[_text(c) for c in row] for row in rows]
    boxed = cells + ([headers] if headers else [])
    width = [max(len(r[i]) for r in boxed) for i in range(len(boxed[0]) if boxed else 0)]
    line = "+" + "+".join("-" * (w + 2) for w in width) + "+"
    out = [line]
    if headers:
        out += ["| " + " | ".join(h.ljust(w) for h, w in zip(headers, width)) + " |", line]
    for row in cells:
        parts = [
            (c.rjust(w) if (i == 0 and align_right_first) else c.ljust(w)) for i, (c, w) in enumerate(zip(row, width))
        ]
        out.append("| " + " | ".join(parts) + " |")
    out.append(line)
    return "\n".join(out)


def _text(value) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, (dict, list)):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def _request_id() -> str:
    return str(uuid.uuid4()).upper()


def _confirm(ctx, args, question: str) -> None:
    if getattr(args, "yes", False) or not sys.stdin.isatty():
        return
    answer = input(f"{question} [Y/n] ").strip().lower()
    if answer not in ("", "y", "yes"):
        raise UsageError("cancelled")


def _ws(ctx, args):
    return ctx.workspace(getattr(args, "workspace", None))


def _with_profile(func):
    @functools.wraps(func)
    def run(ctx, args):
        eascmd_local.apply_profile(ctx, args)
        return func(ctx, args)

    return run


def register(sub, add_command) -> None:
    eas = sub.add_parser(
        "eascmd",
        help="EAS-compatible serving: config, create, modify, autoscale, release, version, stop, "
        "start, delete, ls, desc, w, dw, test, resource",
    )
    eas.add_argument(
        "-c",
        dest="config_file",
        default=None,
        metavar="FILE",
        help="the profile to use (default ~/.eas/config, written by `pai eascmd config`)",
    )
    eas.add_argument(
        "-w",
        "--workspace",
        dest="eas_workspace",
        default=None,
        metavar="WORKSPACE",
        help="workspace for the verb that follows",
    )
    verbs = eas.add_subparsers(dest="verb", metavar="VERB", required=True)

    def verb(name, func, text, aliases=(), cell_file=None, under=verbs):
        runner = func if func is eascmd_local.config else _with_profile(func)
        p = add_command(under, name, runner, text, cell_file=cell_file, aliases=list(aliases))
        # `release -w` is the manual's traffic weight: there the workspace is --workspace only
        flags = ("--workspace",) if name == "release" else ("-w", "--workspace")
        p.add_argument(
            *flags,
            dest="workspace",
            default=None,
            help="workspace (default: the profile's, $PAI_LAB_WORKSPACE or default)",
        )
        return p

    resource = verbs.add_parser(
        "resource",
        help="resource groups: ls, desc, li, network",
        description="resource groups: the cluster that runs services and jobs",
    )
    resource_verbs = resource.add_subparsers(dest="resource_verb", metavar="VERB", required=True)
    eascmd_local.register_local(verb, {"resource": functools.partial(verb, under=resource_verbs)})

    eascmd_autoscale.register_autoscale(verb)

    p = verb("create", create, "create a service from its JSON file (-r: blue-green partner)")
    p.add_argument("-r", dest="relate", action="store_true", help="create <name>_<8 hex> next to service <name>")
    p.add_argument("--no-wait", action="store_true", help="return at once instead of waiting for Running")
    p.add_argument("file", help="the service JSON")

    p = verb("modify", modify, "change a service: -Dmetadata.instance=N scales; -s file.json updates")
    p.add_argument("name")
    p.add_argument(
        "-D",
        dest="defines",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a dotted key of the service JSON, e.g. -Dmetadata.instance=3 (repeatable)",
    )
    p.add_argument("-s", dest="spec_file", default=None, help="JSON with only the keys to change")
    p.add_argument("--no-wait", action="store_true")

    p = verb("release", release, "blue-green: send a share of the original endpoint's traffic to this service")
    p.add_argument("name", help="the service made by create -r (<name>_<8 hex>)")
    p.add_argument("-w", dest="weight", type=int, required=True, help="percent of traffic for this service")
    p.add_argument("-y", "--yes", action="store_true", help="do not ask for confirmation")

    p = verb("version", version, "switch a service to one of its versions")
    p.add_argument("name")
    p.add_argument("version", type=int)
    p.add_argument("--no-wait", action="store_true")

    for name, func, text in (
        ("stop", stop, "stop a service (its configuration is kept)"),
        ("start", start, "start a stopped service"),
    ):
        p = verb(name, func, text)
        p.add_argument("name")
        p.add_argument("--no-wait", action="store_true")

    p = verb("delete", delete, "delete a service")
    p.add_argument("name")
    p.add_argument("-y", "--yes", action="store_true", help="do not ask for confirmation")

    verb("ls", ls, "list services", aliases=["list"])
    p = verb("desc", desc, "describe a service")
    p.add_argument("name")
    p = verb("w", workers, "show a service's instances", aliases=["showworkers"])
    p.add_argument("name")
    p = verb("dw", delete_workers, "delete instances (each is replaced by a new one)", aliases=["deleteworkers"])
    p.add_argument("name")
    p.add_argument("instances", help="comma-separated instance names")
    p.add_argument("-y", "--yes", action="store_true")


def _wait(ctx, svc, *, timeout: float = 300) -> None:
    """Print the manual's progress lines until the service runs (or fails)."""
    deadline = time.time() + timeout
    last = None
    while True:
        info = svc.refresh()
        pending = max(0, info.instances_total - info.instances_ready)
        line = f"[OK] Waiting [Total: {info.instances_total}, Pending: {pending}, Running: {info.instances_ready}]"
        if info.state == "Running" and info.instances_ready == info.instances_total:
            ctx.say("[OK] Service is running")
            return
        if info.fatal:  # other failures (a crash, a refused start) are retried by the gateway: wait on
            raise UsageError(f"service {info.name} failed: {info.message}")
        if info.state in ("Stopped",):
            ctx.say("[OK] Service is stopped")
            return
        if line != last:
            ctx.say(line)
            last = line
        if time.time() > deadline:
            cause = f" ({info.message})" if info.message else ""
            raise UsageError(
                f"service {info.name} is still {info.state}{cause} after {timeout:.0f} s; see "
                f"`pai eascmd w {info.name}`"
            )
        time.sleep(0.5)


def _create_output(ctx, info) -> None:
    ctx.say(f"[RequestId]: {_request_id()}")
    ctx.say(ascii_table([["Intranet Endpoint", info.endpoint], ["Token", info.token or ""]], align_right_first=True))
    stamp = info.created_at.strftime("%Y%m%d%H%M%S")
    ctx.say(f"[OK] Building image [local/eas/{info.name}_{REGION}:v0.0.1-{stamp}]")
    ctx.say(f"[OK] Loading model [{info.config.get('model_path') or info.config.get('processor_path')}]")


def _warn(ctx, info) -> None:
    """The server's warnings (keys of the service JSON that mean nothing here, and why), on stderr."""
    for warning in info.warnings:
        print(f"[WARN] {warning}", file=ctx.stderr, flush=True)


def create(ctx, args) -> Result:
    spec = read_spec_file(args.file, "service JSON")
    services = _ws(ctx, args).services
    svc = services.create(spec, relate=args.relate, wait=False)
    _create_output(ctx, svc.info)
    _warn(ctx, svc.info)
    if not args.no_wait:
        _wait(ctx, svc)
    return Result(data=svc.refresh())


def _define(change: dict, item: str) -> None:
    key, sep, raw = item.partition("=")
    if not sep or not key:
        raise UsageError(f"-D expects KEY=VALUE (for example -Dmetadata.instance=3), got {item!r}")
    try:
        value = json.loads(raw)
    except ValueError:
        value = raw
    parts = key.split(".")
    if parts[0] == "metadata" and len(parts) > 2 and parts[1] == "rpc":
        parts = ["metadata", "rpc", ".".join(parts[2:])]
    node = change
    for part in parts[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise UsageError(f"-D{key}: {part} is not an object")
    node[parts[-1]] = value


def modify(ctx, args) -> Result:
    if bool(args.defines) == bool(args.spec_file):
        raise UsageError("pai eascmd modify: give -Dkey=value (one or more) or -s file.json")
    change: dict = {}
    if args.spec_file:
        change = read_spec_file(args.spec_file, "service JSON")
    for item in args.defines:
        _define(change, item)
    svc = _ws(ctx, args).services.get(args.name)
    before = svc.info
    svc.modify(change)
    ctx.say(f"[RequestId]: {_request_id()}")
    if svc.info.latest_version != before.latest_version:
        ctx.say(f"[OK] Service [{args.name}] has a new version {svc.info.latest_version}")
    ctx.say(f"[OK] Service [{args.name}] in region [{REGION}] is updating")
    _warn(ctx, svc.info)
    if not args.no_wait:
        _wait(ctx, svc)
    return Result(data=svc.refresh())


def release(ctx, args) -> Result:
    if not 0 <= args.weight <= 100:
        raise UsageError("pai eascmd release: -w is a percentage from 0 to 100")
    _confirm(ctx, args, f"Confirmed to release this service at weight [{args.weight}%]?")
    svc = _ws(ctx, args).services.get(args.name).release(args.weight)
    ctx.say(f"[RequestId]: {_request_id()}")
    ctx.say(f"[OK] Service [{args.name}] is weighted to {args.weight}% now")
    return Result(data=svc.info)


def version(ctx, args) -> Result:
    svc = _ws(ctx, args).services.get(args.name).version(args.version)
    ctx.say(f"[RequestId]: {_request_id()}")
    ctx.say(f"[OK] Service [{args.name}] is switching to version {args.version}")
    if not args.no_wait:
        _wait(ctx, svc)
    return Result(data=svc.refresh())


def stop(ctx, args) -> Result:
    svc = _ws(ctx, args).services.get(args.name).stop()
    ctx.say(f"[RequestId]: {_request_id()}")
    ctx.say(f"[OK] Service [{args.name}] in region [{REGION}] is stopping")
    if not args.no_wait:
        deadline = time.time() + 60
        while svc.refresh().state != "Stopped" and time.time() < deadline:
            time.sleep(0.3)
        ctx.say("[OK] Service is stopped")
    return Result(data=svc.refresh())


def start(ctx, args) -> Result:
    svc = _ws(ctx, args).services.get(args.name).start()
    ctx.say(f"[RequestId]: {_request_id()}")
    ctx.say(f"[OK] Service [{args.name}] in region [{REGION}] is starting")
    if not args.no_wait:
        _wait(ctx, svc)
    return Result(data=svc.refresh())


def delete(ctx, args) -> Result:
    _confirm(ctx, args, f"Are you sure to delete the service [{args.name}] in [{REGION}]?")
    _ws(ctx, args).services.get(args.name).delete()
    ctx.say(f"[RequestId]: {_request_id()}")
    ctx.say(f"[OK] Service [{args.name}] in region [{REGION}] is terminating")
    ctx.say("[OK] Service was deleted successfully")
    return Result(data={"deleted": args.name})


def ls(ctx, args) -> Result:
    services = _ws(ctx, args).services.list()
    rows = [
        [s.name, REGION, s.instances_total, s.created_at, s.updated_at, s.state, s.weight, s.service_path]
        for s in services
    ]
    text = ascii_table(rows, LS_COLUMNS) if rows else ascii_table([], LS_COLUMNS)
    return Result(
        data=services,
        text=text,
        frame=True,
        columns=[
            "name",
            "state",
            "instances_ready",
            "instances_total",
            "weight",
            "traffic",
            "endpoint",
            "service_path",
            "created_at",
            "updated_at",
        ],
    )


def desc(ctx, args) -> Result:
    info = _ws(ctx, args).services.get(args.name).info
    fields = [
        ("Status", info.state),
        ("ServiceName", info.name),
        ("Region", REGION),
        ("CreateTime", info.created_at),
        ("UpdateTime", info.updated_at),
        ("AccessToken", info.token or ""),
        ("PrivateToken", ""),
        ("TotalInstance", info.instances_total),
        ("RunningInstance", info.instances_ready),
        ("PendingInstance", max(0, info.instances_total - info.instances_ready)),
        ("CPU", info.config.get("metadata", {}).get("cpu", "")),
        ("GPU", info.config.get("metadata", {}).get("gpu", 0)),
        ("Memory", f"{info.config['metadata']['memory']}M" if info.config.get("metadata", {}).get("memory") else ""),
        ("Image", f"local/eas/{info.name}_{REGION}:v0.0.1-{info.created_at.strftime('%Y%m%d%H%M%S')}"),
        ("Weight", info.weight),
        ("LatestVersion", info.latest_version),
        ("CurrentVersion", info.current_version),
        ("Message", info.message or ("Service start successfully" if info.state == "Running" else "")),
        ("APIGatewayUrl", ""),
        ("APIGatewayAppKey", ""),
        ("APIGatewayAppSecret", ""),
        ("IntranetEndpoint", info.endpoint or ""),
        ("ServiceConfig", info.config),
    ]
    return Result(data=info, text=ascii_table([[k, v] for k, v in fields], ["FIELD", "VALUE"]))


def workers(ctx, args) -> Result:
    instances = _ws(ctx, args).services.get(args.name).instances()
    rows = [
        [i.name, i.inner_ip, i.host_ip, i.start_at, i.restarts, i.status, i.ready, i.reason, i.last_state or ""]
        for i in instances
    ]
    return Result(
        data=instances,
        text=ascii_table(rows, W_COLUMNS),
        frame=True,
        columns=["name", "status", "ready", "restarts", "reason", "last_state", "start_at", "pid", "gpus", "worker"],
    )


def delete_workers(ctx, args) -> Result:
    names = [n.strip() for n in args.instances.split(",") if n.strip()]
    if not names:
        raise UsageError("pai eascmd dw: give instance names separated by commas (see `pai eascmd w NAME`)")
    _confirm(
        ctx, args, f"Are you sure to delete the instances [{','.join(names)}] of service [{args.name}] in [{REGION}]?"
    )
    svc = _ws(ctx, args).services.get(args.name)
    for name in names:
        svc.delete_instance(name)
    ctx.say(
        f"[OK] Instance(s) [{','.join(names)}] for service [{args.name}] in region [{REGION}] was deleted successfully"
    )
    return Result(data={"deleted": names})
