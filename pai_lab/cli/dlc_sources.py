"""`pai dlc create|get|delete data_source|code_source`: the PAI-DLC verbs over the dataset registry.

A data source is a registered dataset (its ID, ``data-YYYYMMDDhhmmss-xxxxxxxxxxxx``, is the
dataset's) and ``--file_system_id`` is the folder or bucket prefix it points at. Output keeps
the DLC client's MySQL-style tables, ``Total | N`` footers and ``FIELD | VALUE`` single views.
"""

from __future__ import annotations

import sys
import uuid
from datetime import datetime

from pai_lab.cli.base import Result, UsageError

DATA_COLUMNS = [
    "DataSourceType",
    "DataSourceId",
    "DisplayName",
    "Description",
    "FileSystemId",
    "UserId",
    "GmtCreateTime",
    "GmtModifyTime",
]
CODE_COLUMNS = [
    "CodeSourceId",
    "DisplayName",
    "Description",
    "CodeRepo",
    "CodeBranch",
    "CodeCommit",
    "CodeRepoUserName",
    "CodeRepoAccessToken",
    "UserId",
    "GmtCreateTime",
    "GmtModifyTime",
]


def mysql_table(headers: list[str], rows: list[list[str]], footer: list[str] | None = None) -> str:
    """An ASCII table as the DLC client prints it: +---+ rules, | cells |."""
    all_rows = rows + ([footer] if footer else [])
    widths = [max([len(h)] + [len(str(r[i])) for r in all_rows]) for i, h in enumerate(headers)]
    rule = "+" + "+".join("-" * (w + 2) for w in widths) + "+"

    def line(cells):
        return "| " + " | ".join(str(c).ljust(w) for c, w in zip(cells, widths)) + " |"

    out = [rule, line(headers), rule] + [line(r) for r in rows] + [rule]
    if footer:
        out += [line(footer), rule]
    return "\n".join(out)


def _time(value) -> str:
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%dT%H:%M:%SZ")
    return str(value or "")


def request_id() -> str:
    return str(uuid.uuid4()).upper()


def _data_source_type(info) -> str:
    return "nas" if info.source_kind == "local" else "oss"


def _data_row(info) -> dict:
    return {
        "DataSourceType": _data_source_type(info),
        "DataSourceId": info.id,
        "DisplayName": info.name,
        "Description": info.description,
        "FileSystemId": info.source_uri,
        "MountPath": info.mount_path,
        "UserId": info.created_by,
        "GmtCreateTime": _time(info.created_at),
        "GmtModifyTime": _time(info.updated_at),
    }


def _code_row(info) -> dict:
    return {
        "CodeSourceId": info.id,
        "DisplayName": info.display_name,
        "Description": info.description,
        "CodeRepo": info.code_repo,
        "CodeBranch": info.code_branch,
        "CodeCommit": info.code_commit,
        "CodeRepoUserName": "",
        "CodeRepoAccessToken": "",
        "MountPath": info.mount_path,
        "UserId": info.created_by,
        "GmtCreateTime": _time(info.created_at),
        "GmtModifyTime": _time(info.updated_at),
    }


def _field_value(row: dict, order: list[str]) -> str:
    return mysql_table(["FIELD", "VALUE"], [[k, row[k]] for k in order])


def _page(rows: list[dict], args, default_sort: str) -> list[dict]:
    key = {"GmtCreateTime": "GmtCreateTime", "GmtModifyTime": "GmtModifyTime", "DisplayName": "DisplayName"}.get(
        args.sort_by or default_sort, default_sort
    )
    rows = sorted(rows, key=lambda r: r[key], reverse=(args.order or "desc").lower() == "desc")
    if args.page_num < 1 or args.page_size < 1:
        raise UsageError("--page_num and --page_size must be at least 1")
    start = (args.page_num - 1) * args.page_size
    return rows[start : start + args.page_size]


def _confirm(ctx, what: str, force: bool) -> None:
    if force:
        return
    if not sys.stdin or not sys.stdin.isatty():
        raise UsageError(f"deleting {what} needs confirmation; add --force to delete without asking")
    answer = input(f"Are you sure to delete {what}? [Y/n] ").strip().lower()
    if answer not in ("", "y", "yes"):
        raise UsageError("cancelled")


def _flag(p, name: str, **kw):
    """DLC spells flags with underscores; the hyphenated spelling works too."""
    names = [f"--{name}"] + ([f"--{name.replace('_', '-')}"] if "_" in name else [])
    return p.add_argument(*names, dest=name, **kw)


def _list_flags(p, data: bool) -> None:
    _flag(p, "sort_by", default="GmtCreateTime", help="GmtCreateTime, GmtModifyTime or DisplayName")
    _flag(p, "order", default="desc", choices=["desc", "asc"])
    _flag(p, "display_name", default=None, help="fuzzy match on the display name")
    _flag(p, "page_num", type=int, default=1)
    _flag(p, "page_size", type=int, default=10)
    if data:
        _flag(p, "data_source_type", default=None, help="nas (local folders) or oss (buckets)")
    p.add_argument("-w", "--workspace")


def register_dlc(verbs, add_command, verbs_sub) -> None:
    p = add_command(verbs["create"], "data_source", create_data_source, "register a data source (a dataset)")
    _flag(p, "display_name", required=True, help="the dataset name")
    _flag(p, "file_system_id", required=True, help="a folder under the allowed roots, or s3:// / oss:// prefix")
    _flag(p, "data_source_type", default=None, help="nas for folders, oss for buckets (checked against the path)")
    _flag(p, "description", default="")
    _flag(p, "mount_path", default="/root/data/")
    _flag(p, "endpoint_url", default=None, help="S3/OSS endpoint for bucket sources")
    p.add_argument("-w", "--workspace")

    p = add_command(verbs["get"], "data_source", get_data_source, "list data sources, or show one")
    p.add_argument("id", nargs="?")
    _list_flags(p, data=True)

    p = add_command(verbs["delete"], "data_source", delete_data_source, "delete a data source (the data stays)")
    p.add_argument("id")
    p.add_argument("--force", action="store_true", help="delete without asking")
    p.add_argument("-w", "--workspace")

    p = add_command(verbs["create"], "code_source", create_code_source, "register a code source (git or folder)")
    _flag(p, "display_name", required=True)
    p.add_argument(
        "--code_repo_url",
        "--code_repo",
        "--code-repo-url",
        "--code-repo",
        dest="code_repo",
        required=True,
        help="git URL or local folder",
    )
    _flag(p, "code_branch", default="")
    _flag(p, "description", default="")
    _flag(p, "mount_path", default="/root/code/")
    p.add_argument("-w", "--workspace")

    p = add_command(verbs["get"], "code_source", get_code_source, "list code sources, or show one")
    p.add_argument("id", nargs="?")
    _list_flags(p, data=False)

    p = add_command(verbs["delete"], "code_source", delete_code_source, "delete a code source")
    p.add_argument("id")
    p.add_argument("--force", action="store_true", help="delete without asking")
    p.add_argument("-w", "--workspace")


def create_data_source(ctx, args) -> Result:
    source = args.file_system_id
    is_bucket = source.startswith(("s3://", "oss://"))
    kind = (args.data_source_type or ("oss" if is_bucket else "nas")).lower()
    if kind not in ("nas", "oss"):
        raise UsageError("--data_source_type is nas (a folder) or oss (a bucket prefix)")
    if (kind == "oss") != is_bucket:
        raise UsageError(
            f"--data_source_type {kind} does not match --file_system_id {source!r}: nas takes a "
            "folder, oss an s3:// or oss:// prefix"
        )
    options = {"endpoint_url": args.endpoint_url} if args.endpoint_url else {}
    ds = ctx.workspace(args.workspace).datasets.register(
        args.display_name,
        source,
        description=args.description,
        mount_path=args.mount_path,
        storage_options=options,
        progress=False,
    )
    rid = request_id()
    text = mysql_table(["DataSourceId", "RequestId"], [[ds.id, rid]])
    return Result(data={"DataSourceId": ds.id, "RequestId": rid}, text=text)


def _data_sources(ctx, args) -> list[dict]:
    infos = [i for i in ctx.workspace(args.workspace).datasets.list() if i.source_kind in ("local", "s3")]
    rows = [_data_row(i) for i in infos]
    if args.display_name:
        rows = [r for r in rows if args.display_name.lower() in r["DisplayName"].lower()]
    if args.data_source_type:
        rows = [r for r in rows if r["DataSourceType"] == args.data_source_type.lower()]
    return rows


def get_data_source(ctx, args) -> Result:
    if args.id:
        info = ctx.workspace(args.workspace).datasets.get(args.id).info
        row = _data_row(info)
        order = [
            "DataSourceType",
            "DataSourceId",
            "DisplayName",
            "Description",
            "FileSystemId",
            "MountPath",
            "UserId",
            "GmtCreateTime",
            "GmtModifyTime",
        ]
        return Result(data=row, text=_field_value(row, order))
    rows = _data_sources(ctx, args)
    page = _page(rows, args, "GmtCreateTime")
    text = mysql_table(
        DATA_COLUMNS,
        [[r[c] for c in DATA_COLUMNS] for r in page],
        ["Total", str(len(rows))] + [""] * (len(DATA_COLUMNS) - 2),
    )
    return Result(data=page, text=text, frame=True, columns=DATA_COLUMNS)


def delete_data_source(ctx, args) -> Result:
    datasets = ctx.workspace(args.workspace).datasets
    info = datasets.get(args.id).info  # a clear "not found" before asking
    _confirm(ctx, f"data source {info.id}", args.force)
    datasets.rm(info.id)
    ctx.say(f"[Info] Data source [{info.id}] deleted")
    return Result(data={"DataSourceId": info.id, "deleted": True})


def create_code_source(ctx, args) -> Result:
    ws = ctx.workspace(args.workspace)
    body = {
        "display_name": args.display_name,
        "code_repo": args.code_repo,
        "code_branch": args.code_branch,
        "description": args.description,
        "mount_path": args.mount_path,
    }
    from pai_lab.datasets.schemas import CodeSource

    info = CodeSource.model_validate(ws._post("/code_sources", body))
    rid = request_id()
    return Result(
        data={"CodeSourceId": info.id, "RequestId": rid},
        text=mysql_table(["CodeSourceId", "RequestId"], [[info.id, rid]]),
    )


def get_code_source(ctx, args) -> Result:
    from pai_lab.datasets.schemas import CodeSource

    ws = ctx.workspace(args.workspace)
    if args.id:
        row = _code_row(CodeSource.model_validate(ws._get(f"/code_sources/{args.id}")))
        order = [*CODE_COLUMNS[:8], "MountPath", *CODE_COLUMNS[8:]]
        return Result(data=row, text=_field_value(row, order))
    params = {"display_name": args.display_name} if args.display_name else None
    rows = [_code_row(CodeSource.model_validate(c)) for c in ws._get("/code_sources", params=params)]
    page = _page(rows, args, "GmtCreateTime")
    text = mysql_table(
        CODE_COLUMNS,
        [[r[c] for c in CODE_COLUMNS] for r in page],
        ["Total", str(len(rows))] + [""] * (len(CODE_COLUMNS) - 2),
    )
    return Result(data=page, text=text, frame=True, columns=CODE_COLUMNS)


def delete_code_source(ctx, args) -> Result:
    ws = ctx.workspace(args.workspace)
    ws._get(f"/code_sources/{args.id}")
    _confirm(ctx, f"code source {args.id}", args.force)
    ws._delete(f"/code_sources/{args.id}")
    ctx.say(f"[Info] Code source [{args.id}] deleted")
    return Result(data={"CodeSourceId": args.id, "deleted": True})
