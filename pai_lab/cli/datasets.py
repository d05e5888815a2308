"""`pai dataset register|ls|show|versions|diff|check|items|manifest|rm|samples`."""

from __future__ import annotations

import json

from pai_lab.cli.base import Result, UsageError, record_result, rows_result

LIST_COLUMNS = [
    "name",
    "data_type",
    "item_count",
    "total_bytes",
    "latest_version",
    "visibility",
    "created_by",
    "source_uri",
]
SHOW_FIELDS = [
    "id",
    "name",
    "data_type",
    "description",
    "source_uri",
    "source_kind",
    "property",
    "origin",
    "visibility",
    "tags",
    "glob",
    "mount_path",
    "storage_options",
    "item_count",
    "total_bytes",
    "latest_version",
    "created_by",
    "created_at",
    "updated_at",
]
VERSION_COLUMNS = [
    "version",
    "item_count",
    "total_bytes",
    "skipped",
    "hashed",
    "created_by",
    "created_at",
    "description",
]
TYPES = ["image", "text", "video", "audio", "tabular", "other"]


def _pairs(values: list[str] | None, flag: str) -> dict[str, str]:
    out = {}
    for value in values or []:
        key, sep, val = value.partition("=")
        if not sep or not key:
            raise UsageError(f"{flag} expects KEY=VALUE, got {value!r}")
        out[key] = val
    return out


def _options(args) -> dict:
    options: dict = {}
    for key, value in _pairs(args.storage_option, "--storage-option").items():
        try:
            options[key] = json.loads(value)  # true, 123, {"a": 1}
        except ValueError:
            options[key] = value
    if args.endpoint_url:
        options["endpoint_url"] = args.endpoint_url
    if args.anon:
        options["anon"] = True
    return options


def register(sub, add_command) -> None:
    group = sub.add_parser("dataset", help="datasets: register, ls, show, versions, diff, check, manifest, rm")
    ds = group.add_subparsers(dest="verb", metavar="VERB", required=True)

    p = add_command(
        ds,
        "register",
        dataset_register,
        "register a folder, file, s3:// or oss:// prefix, .manifest or sample://NAME as a dataset",
    )
    p.add_argument("name")
    p.add_argument(
        "source",
        help="path (relative to the server root), s3://bucket/prefix/, oss://..., "
        "file.manifest or sample://digits|reviews|shapes",
    )
    p.add_argument("--type", dest="data_type", choices=TYPES, help="data type (detected when left out)")
    p.add_argument("--scan", action="store_true", help="walk the source now and write its manifest as version 1")
    p.add_argument("--glob", help="only items matching these patterns, comma separated ('*.png,*.jpg')")
    p.add_argument("--tag", action="append", metavar="K=V", help="a tag (repeatable)")
    p.add_argument("--description", "-d", default="")
    p.add_argument("--private", action="store_true", help="visible only to you (and the workspace's admins)")
    p.add_argument("--hash", action="store_true", help="record a sha256 of every local file (slower)")
    p.add_argument("--mount-path", "--mount_path", dest="mount_path", help="where jobs see it (default /root/data/)")
    p.add_argument("--endpoint-url", "--endpoint_url", dest="endpoint_url", help="S3/OSS endpoint URL")
    p.add_argument("--anon", action="store_true", help="read the bucket anonymously")
    p.add_argument(
        "--storage-option",
        action="append",
        metavar="K=V",
        help="an s3fs option such as key=..., secret=..., profile=... (repeatable)",
    )
    p.add_argument("-w", "--workspace")

    p = add_command(ds, "ls", dataset_ls, "datasets of a workspace")
    p.add_argument("--type", dest="data_type", choices=TYPES)
    p.add_argument("-w", "--workspace")

    p = add_command(ds, "show", dataset_show, "one dataset")
    p.add_argument("name")
    p.add_argument("-w", "--workspace")

    p = add_command(ds, "versions", dataset_versions, "a dataset's versions; --new re-scans into a new one")
    p.add_argument("name")
    p.add_argument("--new", action="store_true", help="re-scan the source into a new version first")
    p.add_argument("--description", "-d", default="")
    p.add_argument("--hash", action="store_true", help="with --new: record a sha256 of every local file")
    p.add_argument("-w", "--workspace")

    p = add_command(ds, "diff", dataset_diff, "items added, removed and changed between two versions")
    p.add_argument("name")
    p.add_argument("from_version", type=int)
    p.add_argument("to_version", type=int, nargs="?", help="default: the latest version")
    p.add_argument("--limit", type=int, default=50, help="keys listed per kind (default 50)")
    p.add_argument("-w", "--workspace")

    p = add_command(ds, "check", dataset_check, "do a version's items still exist unchanged?")
    p.add_argument("name")
    p.add_argument("--version", type=int)
    p.add_argument("-w", "--workspace")

    p = add_command(ds, "items", dataset_items, "a page of a version's items")
    p.add_argument("name")
    p.add_argument("--version", type=int)
    p.add_argument("--offset", type=int, default=0)
    p.add_argument("--limit", type=int, default=20)
    p.add_argument("-w", "--workspace")

    p = add_command(ds, "manifest", dataset_manifest, "print a version as an iTAG .manifest (JSON Lines)")
    p.add_argument("name")
    p.add_argument("--version", type=int)
    p.add_argument("-w", "--workspace")

    p = add_command(ds, "rm", dataset_rm, "forget a dataset and its versions (the data is not touched)")
    p.add_argument("name")
    p.add_argument("-w", "--workspace")

    add_command(ds, "samples", dataset_samples, "sample datasets you can register as sample://NAME")


def dataset_register(ctx, args) -> Result:
    datasets = ctx.workspace(args.workspace).datasets
    ds = datasets.register(
        args.name,
        args.source,
        data_type=args.data_type,
        scan=args.scan,
        glob=args.glob,
        description=args.description,
        tags=_pairs(args.tag, "--tag"),
        visibility="private" if args.private else "workspace",
        storage_options=_options(args),
        mount_path=args.mount_path,
        hash=args.hash,
        progress=ctx.stderr if args.scan else False,
    )
    info = ds.info
    version = f"version {info.latest_version}" if info.latest_version else "no version yet (scan with --new)"
    ctx.say(f"[Info] Dataset [{info.name}] registered ({info.id}): {info.item_count} items, {version}")
    return record_result(info, SHOW_FIELDS)


def dataset_ls(ctx, args) -> Result:
    return rows_result(ctx.workspace(args.workspace).datasets.list(args.data_type), LIST_COLUMNS)


def dataset_show(ctx, args) -> Result:
    return record_result(ctx.workspace(args.workspace).datasets.get(args.name).info, SHOW_FIELDS)


def dataset_versions(ctx, args) -> Result:
    ds = ctx.workspace(args.workspace).datasets.get(args.name)
    if args.new:
        version = ds.new_version(args.description, hash=args.hash, progress=ctx.stderr)
        ctx.say(f"[Info] Dataset [{ds.name}] version {version.version}: {version.item_count} items")
    return rows_result(ds.versions, VERSION_COLUMNS)


def dataset_diff(ctx, args) -> Result:
    ds = ctx.workspace(args.workspace).datasets.get(args.name)
    diff = ds.diff(args.from_version, args.to_version, limit=args.limit)
    lines = [
        f"{diff.dataset}: version {diff.from_version} -> {diff.to_version}: {diff.added_count} added, "
        f"{diff.removed_count} removed, {diff.changed_count} changed, {diff.unchanged_count} unchanged"
    ]
    for sign, entries in (("+", diff.added), ("-", diff.removed), ("~", diff.changed)):
        lines += [f"{sign} {e.key}" for e in entries]
    if diff.truncated:
        lines.append(f"(first {args.limit} of each kind; --limit shows more)")
    return Result(data=diff, text="\n".join(lines))


def dataset_check(ctx, args) -> Result:
    report = ctx.workspace(args.workspace).datasets.get(args.name).check(args.version)
    lines = [report.message]
    lines += [f"missing {k}" for k in report.missing] + [f"changed {k}" for k in report.changed]
    return Result(data=report, text="\n".join(lines), exit_code=0 if report.ok else 1)


def dataset_items(ctx, args) -> Result:
    page = ctx.workspace(args.workspace).datasets.get(args.name).page(args.offset, args.limit, args.version)
    rows = [
        {"index": i.index, "key": i.key, "size": i.size, "stamp": i.stamp, "source": (i.source or "")[:80]}
        for i in page.items
    ]
    result = rows_result(rows, ["index", "key", "size", "stamp", "source"])
    result.text += f"\n({len(page.items)} of {page.total} items, version {page.version})"
    return result


def dataset_manifest(ctx, args) -> Result:
    ds = ctx.workspace(args.workspace).datasets.get(args.name)
    if args.json:
        return Result(data=list(ds.manifest(args.version)))
    count = 0
    for line in ds.manifest(args.version):
        ctx.stdout.write(json.dumps(line, ensure_ascii=False, separators=(",", ":")) + "\n")
        count += 1
    ctx.stdout.flush()
    return Result(data={"dataset": ds.name, "lines": count})


def dataset_rm(ctx, args) -> Result:
    ctx.workspace(args.workspace).datasets.rm(args.name)
    ctx.say(f"[Info] Dataset [{args.name}] deleted")
    return Result(data={"deleted": args.name})


def dataset_samples(ctx, args) -> Result:
    return rows_result(
        ctx.client.workspace("default").datasets.samples(), ["name", "data_type", "item_count", "description"]
    )
