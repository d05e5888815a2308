"""`pai label ...`: labeling tasks (iTAG) from the terminal and the `%pai` magic."""

from __future__ import annotations

import json
from pathlib import Path

from pai_lab.cli.base import Result, UsageError, read_spec_file, record_result, rows_result
from pai_lab.cli.easyvision import convert

TASK_COLUMNS = ["name", "id", "template", "state", "total", "labeled", "checked", "accepted", "my_roles"]
SHOW_COLUMNS = [
    *TASK_COLUMNS,
    "flow",
    "rejected",
    "skipped",
    "packages_left",
    "check_ratio",
    "package_size",
    "package_by",
    "dataset",
    "created_by",
    "created_at",
    "description",
]
FORMATS = ["itag", "easyvision", "label-studio", "coco", "yolo", "conll", "tfrecord"]
CREATE_KEYS = {
    "name",
    "template",
    "dataset",
    "dataset_version",
    "manifest",
    "labels",
    "multi",
    "flow",
    "check_ratio",
    "package_size",
    "package_by",
    "labelers",
    "checkers",
    "acceptors",
    "admins",
    "relation_labels",
    "content_keys",
    "description",
}


def _list(values) -> list[str]:
    if values is None:
        return []
    if isinstance(values, str):
        values = [values]
    return [v.strip() for value in values for v in str(value).split(",") if v.strip()]


def _ws(ctx, args):
    return ctx.workspace(getattr(args, "workspace", None))


def register(sub, add_command) -> None:
    lab = sub.add_parser(
        "label",
        help="labeling tasks (iTAG): templates, create, ls, show, stats, packages, "
        "claim, release, reassign, people, order, export, convert, import, offline, online, "
        "rm",
    ).add_subparsers(dest="verb", metavar="VERB", required=True)

    def cmd(name, func, text, **kw):
        p = add_command(lab, name, func, text, **kw)
        p.add_argument("-w", "--workspace")
        return p

    p = cmd("templates", templates, "built-in and custom templates; --add FILE stores a custom one", cell_file="--add")
    p.add_argument("--add", metavar="FILE", help="a custom template as JSON/YAML: name, contents, questions")

    p = cmd("create", create, "create a labeling task from a dataset or a manifest file", cell_file="-f")
    p.add_argument("name", nargs="?")
    p.add_argument("--template", "-t", help="a built-in id (pai label templates) or a custom template's name")
    p.add_argument("--dataset", "-d")
    p.add_argument("--version", type=int, dest="dataset_version")
    p.add_argument("--manifest", help='a local manifest (JSON lines {"data": {...}}, or one text per line)')
    p.add_argument("--labels", "-l", action="append", help="label names (repeat or separate with commas)")
    p.add_argument("--multi", action="store_true", help="a selection may carry several labels")
    p.add_argument("--relation-labels", action="append")
    p.add_argument("--flow", choices=["label", "label-check", "label-accept", "label-check-accept"])
    p.add_argument("--check-ratio", type=float)
    p.add_argument("--package-size", type=int)
    p.add_argument("--package-by", help="one package per value of this manifest field")
    for who in ("labelers", "checkers", "acceptors", "admins"):
        p.add_argument(f"--{who}", action="append")
    p.add_argument("--description")
    p.add_argument("-f", "--file", help="JSON/YAML with the same keys (name, template, labels, flow...)")

    cmd("ls", ls, "labeling tasks and their progress")
    for name, func, text in (
        ("show", show, "one task"),
        ("stats", stats, "progress, people and agreement"),
        ("offline", offline, "take a task offline"),
        ("online", online, "bring a task online"),
        ("rm", rm, "delete a task and its answers"),
    ):
        p = cmd(name, func, text)
        p.add_argument("task", help="task id or name")

    p = cmd("packages", packages, "a task's packages: state, holder, progress")
    p.add_argument("task")
    p.add_argument("--state", help="only packages in this state, e.g. labeling or wait_check")

    p = cmd("claim", claim, "take the next package of a stage from its pool (or the one you hold)")
    p.add_argument("task")
    p.add_argument("--stage", default="label", choices=["label", "check", "accept"])

    p = cmd("release", release, "put a claimed package back in its pool (its holder or a task admin)")
    p.add_argument("task")
    p.add_argument("package", type=int, help="package number (pai label packages TASK)")

    p = cmd("reassign", reassign, "hand a claimed package to someone else (task admins)")
    p.add_argument("task")
    p.add_argument("package", type=int)
    p.add_argument("--to", required=True, metavar="USER", help="who holds it next")

    p = cmd("people", people, "show or change who labels, checks, accepts and administers a task")
    p.add_argument("task")
    for who in ("labelers", "checkers", "acceptors", "admins"):
        p.add_argument(f"--{who}", action="append", help=f"the task's {who} (replaces the list; commas or repeat)")

    p = cmd("order", order, "repack the packages nobody has started: most uncertain suggestions first")
    p.add_argument("task")
    p.add_argument(
        "--by",
        required=True,
        metavar="ORDER",
        help="least_confidence, margin, entropy (from the suggestions' scores), random; typical (image tasks, "
        "before any suggestion) or cluster_margin (image tasks: uncertain and not alike)",
    )
    p.add_argument("--seed", type=int, help="random order: its seed; typical, cluster_margin: k-means' seed")

    p = cmd(
        "export", export, "export results (iTAG manifest, EasyVision CSV, Label Studio, COCO, YOLO, CoNLL, TFRecord)"
    )
    p.add_argument("task")
    p.add_argument("--format", default="itag", choices=FORMATS)
    p.add_argument("--out", "-o", required=True, help="file, folder (yolo), prefix (tfrecord) or s3:// URI")
    p.add_argument("--register", metavar="DATASET", help="also register the iTAG export as this dataset")
    p.add_argument(
        "--option", action="append", default=[], metavar="KEY=VALUE", help="format option, e.g. test_ratio=0.2 (repeat)"
    )

    p = cmd(
        "convert",
        convert,
        "EasyVision convert to TFRecord, as the manual types it: -Dcmd=convert -Dlabel_file=CSV "
        "-Dconvert_param_config='--model_type DETECTION ...' -Doutput_tfrecord=PREFIX (or a TASK, not label_file)",
    )
    p.add_argument("task", nargs="?", help="a labeling task to convert (else -Dlabel_file)")
    p.add_argument("-name", dest="algorithm", default="easy_vision_ext", help="easy_vision_ext (the manual's -name)")
    p.add_argument("-D", dest="params", action="append", default=[], metavar="KEY=VALUE", help="a parameter (repeat)")
    p.add_argument("--overwrite", action="store_true", help="replace existing shards of the prefix")
    p.add_argument("--here", action="store_true", help="convert a label_file in this process (SELF_DEFINED runs here)")

    p = cmd("import", import_, "create a task from a result file (answers kept in their stages)")
    p.add_argument("file")
    p.add_argument("--format", default="itag", choices=["itag", "label-studio", "coco", "easyvision"])
    p.add_argument("--template", "-t")
    p.add_argument("--name", "-n", required=True)
    p.add_argument("--labels", "-l", action="append")
    p.add_argument("--multi", action="store_true", default=None)
    p.add_argument("--as-prelabels", action="store_true", help="keep the answers as suggestions to review")


def templates(ctx, args) -> Result:
    ws = _ws(ctx, args)
    if args.add:
        info = ws.labeling.create_template(read_spec_file(args.add, "template"))
        ctx.say(f"[Info] Template [{info.id}] stored")
        return record_result(info, ["id", "kind", "media", "description"])
    return rows_result(ws.labeling.templates(), ["id", "kind", "media", "description"])


def _manifest_lines(path: str) -> list[dict]:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot read manifest {path!r}: {exc.strerror}") from None
    lines = []
    for raw in text.splitlines():
        if not raw.strip():
            continue
        try:
            line = json.loads(raw)
        except ValueError:
            line = None
        # a text dataset may be one sample per line
        lines.append(line if isinstance(line, dict) and "data" in line else {"data": {"source": raw}})
    return lines


def create(ctx, args) -> Result:
    spec = read_spec_file(args.file, "task spec") if args.file else {}
    unknown = set(spec) - CREATE_KEYS
    if unknown:
        raise UsageError(
            f"unknown key {sorted(unknown)[0]!r} in the task spec; keys are {', '.join(sorted(CREATE_KEYS))}"
        )
    opts = dict(spec)
    for key in (
        "name",
        "template",
        "dataset",
        "dataset_version",
        "manifest",
        "multi",
        "flow",
        "check_ratio",
        "package_size",
        "package_by",
        "description",
    ):
        value = getattr(args, key, None)
        if value not in (None, False):
            opts[key] = value
    for key in ("labels", "labelers", "checkers", "acceptors", "admins", "relation_labels"):
        value = getattr(args, key, None)
        if value:
            opts[key] = _list(value)
        elif key in opts:
            opts[key] = _list(opts[key])
    name, template = opts.pop("name", None), opts.pop("template", None)
    if not name or not template:
        raise UsageError("pai label create: give NAME and --template (or a spec file with name: and template:)")
    manifest = opts.pop("manifest", None)
    lines = _manifest_lines(manifest) if manifest else None
    if lines is None and not opts.get("dataset"):
        raise UsageError("pai label create: give --dataset NAME or --manifest FILE")
    task = _ws(ctx, args).labeling.create_task(name, template, lines=lines, **opts)
    ctx.say(f"[Info] Labeling task [{task.name}] created ({task.id}): {task.info.total} items")
    return record_result(task.info, SHOW_COLUMNS)


def ls(ctx, args) -> Result:
    return rows_result([t.info for t in _ws(ctx, args).labeling.list()], TASK_COLUMNS)


def show(ctx, args) -> Result:
    return record_result(_ws(ctx, args).labeling.get(args.task).info, SHOW_COLUMNS)


def stats(ctx, args) -> Result:
    st = _ws(ctx, args).labeling.get(args.task).stats()
    lines = [
        f"labeled   {st.labeled}/{st.total}",
        f"checked   {st.checked}",
        f"accepted  {st.accepted}",
        f"rejected  {st.rejected}",
        f"skipped   {st.skipped}",
        f"packages left  {st.packages_left}",
        "packages  " + ", ".join(f"{k}={v}" for k, v in st.packages.items() if v),
    ]
    if st.suggested:
        lines.append(
            f"suggested {st.suggested}: {st.suggestions_accepted} accepted as they were, "
            f"{st.suggestions_changed} changed"
        )
    if st.agreement is not None:
        lines.append(f"agreement {st.agreement:.1%} (label answers the checkers kept)")
    for p in st.people:
        rate = f"{p.items_per_hour}/h" if p.items_per_hour is not None else "-"
        lines.append(f"  {p.stage:<7} {p.user:<16} {p.items:>6} items  {rate}")
    return Result(data=st, text="\n".join(lines))


def offline(ctx, args) -> Result:
    info = _ws(ctx, args).labeling.get(args.task).offline()
    ctx.say(f"[Info] Labeling task [{info.name}] is offline")
    return record_result(info, TASK_COLUMNS)


def online(ctx, args) -> Result:
    info = _ws(ctx, args).labeling.get(args.task).online()
    ctx.say(f"[Info] Labeling task [{info.name}] is online ({info.state})")
    return record_result(info, TASK_COLUMNS)


def rm(ctx, args) -> Result:
    _ws(ctx, args).labeling.delete(args.task)
    ctx.say(f"[Info] Labeling task [{args.task}] deleted")
    return Result(data={"deleted": args.task})


PACKAGE_COLUMNS = ["number", "key", "state", "holder", "labeler", "size", "done", "rework", "comment"]


def packages(ctx, args) -> Result:
    return rows_result(_ws(ctx, args).labeling.get(args.task).packages(args.state), PACKAGE_COLUMNS)


def claim(ctx, args) -> Result:
    task = _ws(ctx, args).labeling.get(args.task)
    pkg = task.claim(args.stage)
    if pkg is None:
        ctx.say(f"[Info] No package of [{task.name}] is waiting for {args.stage}")
        return Result(data=None)
    ctx.say(f"[Info] You hold package {pkg.number} of [{task.name}] ({pkg.size} items, {pkg.state})")
    return record_result(pkg, PACKAGE_COLUMNS)


def release(ctx, args) -> Result:
    task = _ws(ctx, args).labeling.get(args.task)
    pkg = task.release(args.package)
    ctx.say(f"[Info] Package {pkg.number} of [{task.name}] is back in the pool ({pkg.state})")
    return record_result(pkg, PACKAGE_COLUMNS)


def reassign(ctx, args) -> Result:
    task = _ws(ctx, args).labeling.get(args.task)
    pkg = task.reassign(args.package, args.to)
    ctx.say(f"[Info] Package {pkg.number} of [{task.name}] is now held by {pkg.holder}")
    return record_result(pkg, PACKAGE_COLUMNS)


def people(ctx, args) -> Result:
    task = _ws(ctx, args).labeling.get(args.task)
    change = {
        who: _list(getattr(args, who)) for who in ("labelers", "checkers", "acceptors", "admins") if getattr(args, who)
    }
    info = task.set_people(**change) if change else task.info
    if change:
        ctx.say(f"[Info] People of [{task.name}] updated")
    rows = [
        {"role": who, "people": ", ".join(info.people.get(who, [])) or "-"}
        for who in ("labelers", "checkers", "acceptors", "admins")
    ]
    return Result(data=info.people, text="\n".join(f"{r['role']:<10} {r['people']}" for r in rows))


def order(ctx, args) -> Result:
    task = _ws(ctx, args).labeling.get(args.task)
    done = task.order(args.by, seed=args.seed)
    ctx.say(
        f"[Info] {done.items} items of [{task.name}] repacked into {done.packages} packages by {done.by} "
        f"({done.scored} scored)"
    )
    return record_result(done, ["by", "packages", "items", "scored"])


def _options(values: list[str]) -> dict:
    out = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"--option {item!r}: write KEY=VALUE, e.g. test_ratio=0.2")
        try:
            out[key] = json.loads(value)
        except ValueError:
            out[key] = value
    return out


def export(ctx, args) -> Result:
    task = _ws(ctx, args).labeling.get(args.task)
    ctx.say(f"[Info] Exporting {task.info.total} items of [{task.name}] as {args.format} to {args.out}")
    result = task.export(args.format, args.out, register_as=args.register, options=_options(args.option) or None)
    if result.dataset:
        ctx.say(f"[Info] Registered as dataset [{result.dataset}] version {result.dataset_version}")
    return record_result(result, ["format", "to", "items", "files", "dataset", "dataset_version"])


def import_(ctx, args) -> Result:
    if not Path(args.file).is_file():
        raise UsageError(f"pai label import: no file {args.file!r}")
    options = {"labels": _list(args.labels) or None, "multi": args.multi, "as_prelabels": args.as_prelabels or None}
    task = _ws(ctx, args).labeling.import_task(
        args.file,
        name=args.name,
        format=args.format,
        template=args.template,
        **{k: v for k, v in options.items() if v is not None},
    )
    ctx.say(
        f"[Info] Labeling task [{task.name}] imported ({task.id}): {task.info.total} items, {task.info.labeled} labeled"
    )
    return record_result(task.info, SHOW_COLUMNS)
