"""`pai models ls|get|register|delete`: the workspace's model registry (SavedModels by name and version)."""

from __future__ import annotations

import os

from pai_lab.cli.base import Result, record_result, rows_result

MODEL_COLUMNS = ["name", "version", "path", "job_id", "created_by", "created_at", "description"]


def register(sub, add_command) -> None:
    models = sub.add_parser("models", help="the model registry: ls, get, register, delete").add_subparsers(
        dest="verb", metavar="VERB", required=True
    )
    p = add_command(models, "ls", models_ls, "model versions of the workspace, newest version first")
    p.add_argument("name", nargs="?", help="only this model's versions")
    p.add_argument("-w", "--workspace")
    p = add_command(models, "get", models_get, "one model version")
    p.add_argument("ref", metavar="MODEL", help="name:version, name (its latest version) or a training job id")
    p.add_argument("-w", "--workspace")
    p = add_command(models, "register", models_register, "register a SavedModel folder as a model's next version")
    p.add_argument("name", help="1-128 letters, digits, '_', '.', '-'")
    p.add_argument("path", help="a SavedModel folder (with saved_model.pb), or an s3:// / oss:// URI")
    p.add_argument("--description", "-d", default="")
    p.add_argument("--job_id", default=None, help="the training job that made it")
    p.add_argument("-w", "--workspace")
    p = add_command(models, "delete", models_delete, "delete a model version", aliases=["rm"])
    p.add_argument("ref", metavar="MODEL", help="name:version, or name (its latest version)")
    p.add_argument("-w", "--workspace")


def models_ls(ctx, args) -> Result:
    return rows_result(ctx.workspace(args.workspace).models.list(args.name), MODEL_COLUMNS)


def models_get(ctx, args) -> Result:
    return record_result(ctx.workspace(args.workspace).models.get(args.ref), ["id", *MODEL_COLUMNS])


def models_register(ctx, args) -> Result:
    path = args.path
    if "://" not in path and os.path.exists(path):  # the caller's folder: absolute before the server sees it
        path = os.path.abspath(path)
    model = ctx.workspace(args.workspace).models.register(args.name, path, args.description, args.job_id)
    ctx.say(f"[Info] Model [{model.name}:{model.version}] registered")
    return record_result(model, ["id", *MODEL_COLUMNS])


def models_delete(ctx, args) -> Result:
    ctx.workspace(args.workspace).models.delete(args.ref)
    ctx.say(f"[Info] Model [{args.ref}] deleted")
    return Result(data={"deleted": args.ref})
