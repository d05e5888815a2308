"""The manual's scripted review and publishing verbs, added to the `label` and `dataset` groups:
`pai label copy|submit|pass|reject` (a package through its stages from a script) and
`pai dataset publish` (a private dataset made visible to the workspace)."""

from __future__ import annotations

import argparse

from pai_lab.cli.base import Result, record_result

PACKAGE_COLUMNS = ["number", "key", "state", "holder", "labeler", "size", "done", "rework", "comment"]


def _verbs(sub, group: str):
    """The sub-parsers of an existing group (`label`, `dataset`), to add verbs to it."""
    parser = sub.choices[group]
    return next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))


def register(sub, add_command) -> None:
    lab = _verbs(sub, "label")

    def cmd(name, func, text):
        p = add_command(lab, name, func, text)
        p.add_argument("-w", "--workspace")
        p.add_argument("task", help="task id or name")
        return p

    p = cmd("copy", label_copy, "copy a task's items, settings and people (no answers) into a new task")
    p.add_argument("name", help="the new task's name")
    p = cmd("submit", label_submit, "submit a package you labeled (every item answered or skipped)")
    p.add_argument("package", type=int, help="package number (pai label packages TASK)")
    p = cmd("pass", label_pass, "pass a package you are checking or accepting")
    p.add_argument("package", type=int)
    p.add_argument("--comment", "-m", default="")
    p = cmd("reject", label_reject, "send a package you are checking or accepting back to its labeler")
    p.add_argument("package", type=int)
    p.add_argument("--comment", "-m", required=True, help="what the labeler should fix")

    p = add_command(
        _verbs(sub, "dataset"), "publish", dataset_publish, "make a private dataset visible to the whole workspace"
    )
    p.add_argument("name")
    p.add_argument("-w", "--workspace")


def _task(ctx, args):
    return ctx.workspace(args.workspace).labeling.get(args.task)


def label_copy(ctx, args) -> Result:
    task = _task(ctx, args)
    copy = task.copy(args.name)
    ctx.say(f"[Info] Task [{copy.name}] ({copy.id}) copied from [{task.name}]")
    return record_result(copy.info, ["name", "id", "template", "state", "total", "flow"])


def _package(ctx, task, pkg, done: str) -> Result:
    ctx.say(f"[Info] Package {pkg.number} of [{task.name}] {done}; now {pkg.state}")
    return record_result(pkg, PACKAGE_COLUMNS)


def label_submit(ctx, args) -> Result:
    task = _task(ctx, args)
    return _package(ctx, task, task.submit_package(args.package), "submitted")


def label_pass(ctx, args) -> Result:
    task = _task(ctx, args)
    return _package(ctx, task, task.passes(args.package, args.comment), "passed")


def label_reject(ctx, args) -> Result:
    task = _task(ctx, args)
    return _package(ctx, task, task.reject(args.package, args.comment), "rejected")


def dataset_publish(ctx, args) -> Result:
    ds = ctx.workspace(args.workspace).datasets.get(args.name).update(visibility="workspace")
    ctx.say(f"[Info] Dataset [{ds.info.name}] is visible to the workspace")
    return record_result(ds.info, ["name", "visibility", "created_by", "updated_at"])
