"""`pai workspace ...`, `pai member ...`, `pai roles`, `pai oplog`."""

from __future__ import annotations

from pai_lab.cli.base import Result, UsageError, read_spec_file, record_result, rows_result

WORKSPACE_COLUMNS = ["name", "id", "my_roles", "member_count", "created_by", "created_at", "description"]
MEMBER_COLUMNS = ["username", "roles", "added_by", "added_at"]


def _roles(values: list[str]) -> list[str]:
    return [r.strip() for v in values for r in v.split(",") if r.strip()]


def register(sub, add_command) -> None:
    ws = sub.add_parser("workspace", help="workspaces: create, ls, show, rm").add_subparsers(
        dest="verb", metavar="VERB", required=True
    )

    p = add_command(ws, "create", workspace_create, "create a workspace; you become its Owner", cell_file="-f")
    p.add_argument("name", nargs="?", help="3-23 characters, starts with a letter; letters, digits, _")
    p.add_argument("--description", "-d", default=None)
    p.add_argument("-f", "--file", help="JSON/YAML spec: name, description, members: {user: [roles]}")
    add_command(ws, "ls", workspace_ls, "workspaces you are a member of")
    p = add_command(ws, "show", workspace_show, "one workspace")
    p.add_argument("name")
    p = add_command(ws, "rm", workspace_rm, "delete a workspace (Owner only)")
    p.add_argument("name")

    mem = sub.add_parser("member", help="members of a workspace: add, set, rm, ls").add_subparsers(
        dest="verb", metavar="VERB", required=True
    )
    p = add_command(mem, "ls", member_ls, "members and their roles")
    p.add_argument("-w", "--workspace")
    for verb, func, text in (
        ("add", member_add, "add a member with one or more roles"),
        ("set", member_set, "replace a member's roles"),
    ):
        p = add_command(mem, verb, func, text)
        p.add_argument("username")
        p.add_argument(
            "--role",
            "-r",
            action="append",
            required=True,
            help="Owner, Administrator, AlgorithmDeveloper, AlgorithmOps, LabelingAdmin, "
            "LabelingTeamLead or Guest (repeat, or separate with commas)",
        )
        p.add_argument("-w", "--workspace")
    p = add_command(mem, "rm", member_rm, "remove members (several at once: a,b,c; all or none)")
    p.add_argument("username", nargs="+", help="one or more user names (repeat, or separate with commas)")
    p.add_argument("-w", "--workspace")

    add_command(sub, "roles", roles, "the role x action permission matrix")
    p = add_command(sub, "oplog", oplog, "a workspace's operation log")
    p.add_argument("-w", "--workspace")
    p.add_argument("--limit", type=int, default=50)


def workspace_create(ctx, args) -> Result:
    spec = read_spec_file(args.file, "workspace spec") if args.file else {}
    unknown = set(spec) - {"name", "description", "members"}
    if unknown:
        raise UsageError(
            f"unknown key {sorted(unknown)[0]!r} in the workspace spec; keys are name, description, members"
        )
    name = args.name or spec.get("name")
    if not name:
        raise UsageError("pai workspace create: give a NAME (or a spec file with `name:`)")
    description = args.description if args.description is not None else spec.get("description", "")
    members = spec.get("members") or {}
    if not isinstance(members, dict):
        raise UsageError("`members` in the workspace spec must map user names to role lists")
    ws = ctx.client.create_workspace(name, description)
    for username, roles in members.items():
        ws.members.add(username, roles)
    info = ws.info()
    ctx.say(f"[Info] Workspace [{info.name}] created ({info.id}), {info.member_count} member(s)")
    return record_result(info, WORKSPACE_COLUMNS)


def workspace_ls(ctx, args) -> Result:
    return rows_result(ctx.client.workspaces(), WORKSPACE_COLUMNS)


def workspace_show(ctx, args) -> Result:
    return record_result(ctx.client.workspace(args.name).info(), [*WORKSPACE_COLUMNS, "status"])


def workspace_rm(ctx, args) -> Result:
    ctx.client.delete_workspace(args.name)
    ctx.say(f"[Info] Workspace [{args.name}] deleted")
    return Result(data={"deleted": args.name})


def member_ls(ctx, args) -> Result:
    return rows_result(ctx.workspace(args.workspace).members.list(), MEMBER_COLUMNS)


def member_add(ctx, args) -> Result:
    member = ctx.workspace(args.workspace).members.add(args.username, _roles(args.role))
    return record_result(member, MEMBER_COLUMNS)


def member_set(ctx, args) -> Result:
    member = ctx.workspace(args.workspace).members.set(args.username, _roles(args.role))
    return record_result(member, MEMBER_COLUMNS)


def member_rm(ctx, args) -> Result:
    names = _roles(args.username)  # the same comma-or-repeat splitting as roles
    removed = ctx.workspace(args.workspace).members.remove(names)
    ctx.say(f"[Info] Member(s) [{', '.join(removed)}] removed")
    return Result(data={"removed": removed[0] if len(names) == 1 else removed})


def roles(ctx, args) -> Result:
    doc = ctx.client.roles()
    names = [r.name for r in doc.roles]
    rows = [{"action": action, **{r: row.get(r, "") for r in names}} for action, row in doc.matrix.items()]
    result = rows_result(rows, ["action", *names])
    result.data = doc
    result.frame = False
    return result


def oplog(ctx, args) -> Result:
    frame = ctx.workspace(args.workspace).oplog(args.limit)
    rows = frame.to_dict("records")
    return rows_result(rows, ["at", "actor", "action", "target", "result"])
