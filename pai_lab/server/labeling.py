"""REST routes of the labeling service (iTAG): templates, tasks, packages, answers, exports."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import quote

from pydantic import BaseModel, Field

from pai_lab.labeling import opening, transfer
from pai_lab.labeling import schemas as sc
from pai_lab.labeling import service as sv
from pai_lab.schema import Int, whole_number
from pai_lab.server.routing import Router

router = Router("labeling")
BASE = "/workspaces/{workspace}/labeling"
TASK = BASE + "/tasks/{task}"
PACKAGE = TASK + "/packages/{number}"


class PackageQuery(BaseModel):
    state: str | None = Field(None, description="only packages in this state")


class ItemsQuery(BaseModel):
    offset: Int = Field(0, ge=0)
    limit: int = Field(100, ge=1, le=10000)


def _containment(req):
    from pai_lab.security.paths import Containment

    return Containment.from_platform(req.platform)


def _number(number: str, what: str = "package") -> int:
    from pai_lab.errors import BadInput

    value = whole_number(number)
    if value is None:
        raise BadInput(f"{what} number must be a whole number (0, 1, ...), got {number[:40]!r}", what)
    return value


# ---------------------------------------------------------------- templates


@router.get(
    BASE + "/templates",
    name="label.template.list",
    summary="Built-in and custom labeling templates",
    response=list[sc.TemplateInfo],
)
def list_templates(req, workspace):
    with req.transaction() as s:
        return sv.list_templates(s, req.user, workspace)


@router.post(
    BASE + "/templates",
    name="label.template.create",
    summary="Store a custom template (as data)",
    body=sc.TemplateCreate,
    response=sc.TemplateInfo,
    status=201,
)
def create_template(req, workspace, body: sc.TemplateCreate):
    with req.transaction() as s:
        return sv.create_template(s, req.user, workspace, body.spec)


@router.delete(BASE + "/templates/{name}", name="label.template.delete", summary="Delete a custom template", status=204)
def delete_template(req, workspace, name):
    with req.transaction() as s:
        sv.delete_template(s, req.user, workspace, name)


# ---------------------------------------------------------------- tasks


@router.get(
    BASE + "/tasks", name="label.task.list", summary="Labeling tasks with their progress", response=list[sc.Task]
)
def list_tasks(req, workspace):
    with req.transaction() as s:
        return sv.list_tasks(s, req.user, workspace)


@router.post(
    BASE + "/tasks",
    name="label.task.create",
    summary="Create a labeling task from a dataset or lines",
    body=sc.TaskCreate,
    response=sc.Task,
    status=201,
)
def create_task(req, workspace, body: sc.TaskCreate):
    with req.transaction() as s:
        return sv.create_task(s, req.user, workspace, body, containment=_containment(req), platform=req.platform)


@router.post(
    BASE + "/imports",
    name="label.task.import",
    summary="Create a task from a result file",
    body=sc.ImportRequest,
    response=sc.Task,
    status=201,
)
def import_task(req, workspace, body: sc.ImportRequest):
    with req.transaction() as s:
        return transfer.import_task(s, req.user, workspace, body, containment=_containment(req))


@router.get(TASK, name="label.task.get", summary="One labeling task", response=sc.Task)
def get_task(req, workspace, task):
    with req.transaction() as s:
        return sv.get_task(s, req.user, workspace, task)


@router.delete(TASK, name="label.task.delete", summary="Delete a labeling task and its answers", status=204)
def delete_task(req, workspace, task):
    with req.transaction() as s:
        sv.delete_task(s, req.user, workspace, task)


@router.post(TASK + "/offline", name="label.task.offline", summary="Take a task offline", response=sc.Task)
def offline(req, workspace, task):
    with req.transaction() as s:
        return sv.set_offline(s, req.user, workspace, task, True)


@router.post(TASK + "/online", name="label.task.online", summary="Bring a task back online", response=sc.Task)
def online(req, workspace, task):
    with req.transaction() as s:
        return sv.set_offline(s, req.user, workspace, task, False)


@router.post(
    TASK + "/copy",
    name="label.task.copy",
    summary="Copy a task's items and settings (no answers)",
    body=sc.TaskCopy,
    response=sc.Task,
    status=201,
)
def copy_task(req, workspace, task, body: sc.TaskCopy):
    with req.transaction() as s:
        return sv.copy_task(s, req.user, workspace, task, body.name)


@router.patch(
    TASK + "/people",
    name="label.task.people",
    summary="Change who labels, checks, accepts, administers",
    body=sc.TaskPeople,
    response=sc.Task,
)
def set_people(req, workspace, task, body: sc.TaskPeople):
    with req.transaction() as s:
        return sv.set_people(s, req.user, workspace, task, body)


@router.get(
    TASK + "/stats", name="label.task.stats", summary="Progress, per-person counts and agreement", response=sc.TaskStats
)
def stats(req, workspace, task):
    with req.transaction() as s:
        return sv.stats(s, req.user, workspace, task)


@router.get(
    TASK + "/items",
    name="label.item.list",
    summary="Items with their answers, in order",
    query=ItemsQuery,
    response=list[sc.TaskItem],
)
def list_items(req, workspace, task, query: ItemsQuery):
    with req.transaction() as s:
        return sv.list_items(s, req.user, workspace, task, query.offset, query.limit)


@router.get(
    TASK + "/items/{seq}/history",
    name="label.item.history",
    summary="Every answer an item was given",
    response=list[sc.AnswerHistory],
)
def item_history(req, workspace, task, seq):
    with req.transaction() as s:
        return sv.item_history(s, req.user, workspace, task, _number(seq, "item"))


@router.post(
    TASK + "/prelabels",
    name="label.prelabel.attach",
    summary="Attach suggestions (pre-labels) to items",
    body=sc.PrelabelBatch,
)
def attach_prelabels(req, workspace, task, body: sc.PrelabelBatch):
    with req.transaction() as s:
        return {"attached": sv.attach_prelabels(s, req.user, workspace, task, body)}


@router.post(
    TASK + "/order",
    name="label.task.order",
    summary="Repack the untouched packages: most uncertain suggestions first, random, typical or cluster-margin",
    body=sc.TaskOrder,
    response=sc.OrderResult,
)
def order(req, workspace, task, body: sc.TaskOrder):
    return sv.order_task(req.platform, req.user, workspace, task, body.by, body.seed, transaction=req.transaction)


# ---------------------------------------------------------------- packages and answers


@router.get(
    TASK + "/packages",
    name="label.package.list",
    summary="The task's packages and their states",
    query=PackageQuery,
    response=list[sc.Package],
)
def list_packages(req, workspace, task, query: PackageQuery):
    with req.transaction() as s:
        return sv.list_packages(s, req.user, workspace, task, query.state)


@router.post(
    TASK + "/claim",
    name="label.package.claim",
    summary="The package you hold in a stage, or the next one from its pool (null: none left)",
    body=sc.PackageClaim,
    response=sc.Package | None,
)
def claim(req, workspace, task, body: sc.PackageClaim):
    with req.transaction() as s:
        return sv.claim(s, req.user, workspace, task, body.stage, platform=req.platform)


@router.post(
    TASK + "/open",
    name="label.package.open",
    summary="Open the package you hold in a stage (or the next from its pool): the task, the stage table, "
    "the items the stage shows with their answers as simple answers, the task's counters",
    body=sc.PackageClaim,
    response=sc.Opened,
)
def open_package(req, workspace, task, body: sc.PackageClaim):
    with req.transaction() as s:
        return opening.open_package(s, req.user, workspace, task, body.stage, platform=req.platform)


class AnswersQuery(BaseModel):
    stage: sc.Stage = "label"


@router.get(
    PACKAGE + "/answers",
    name="label.package.answers",
    summary="The answers a stage stored for a package's items (item seq -> results), without the items",
    query=AnswersQuery,
    response=dict[int, list],
)
def package_answers(req, workspace, task, number, query: AnswersQuery):
    with req.transaction() as s:
        return opening.stage_answers(s, req.user, workspace, task, _number(number), query.stage)


@router.get(
    PACKAGE + "/items",
    name="label.package.items",
    summary="A package's items, pre-labels and answers",
    response=list[sc.TaskItem],
)
def package_items(req, workspace, task, number):
    with req.transaction() as s:
        return sv.package_items(s, req.user, workspace, task, _number(number))


@router.post(
    TASK + "/answers",
    name="label.answer.submit",
    summary="Store one item's answer (idempotent on client_id)",
    body=sc.AnswerSubmit,
    response=sc.AnswerAck,
    status=201,
)
def submit_answer(req, workspace, task, body: sc.AnswerSubmit):
    return sv.store_answer(req.transaction, req.user, workspace, task, body)


@router.post(PACKAGE + "/submit", name="label.package.submit", summary="Submit a labeled package", response=sc.Package)
def submit_package(req, workspace, task, number):
    with req.transaction() as s:
        return sv.submit_package(s, req.user, workspace, task, _number(number))


@router.post(
    PACKAGE + "/pass",
    name="label.package.pass",
    summary="Pass a checked or accepted package",
    body=sc.PackageVerdict,
    response=sc.Package,
)
def pass_package(req, workspace, task, number, body: sc.PackageVerdict):
    with req.transaction() as s:
        return sv.review(s, req.user, workspace, task, _number(number), "pass", body.comment)


@router.post(
    PACKAGE + "/reject",
    name="label.package.reject",
    summary="Send a package back to its labeler with a comment",
    body=sc.PackageVerdict,
    response=sc.Package,
)
def reject_package(req, workspace, task, number, body: sc.PackageVerdict):
    with req.transaction() as s:
        return sv.review(s, req.user, workspace, task, _number(number), "reject", body.comment)


@router.post(
    PACKAGE + "/release",
    name="label.package.release",
    summary="Put a claimed package back in its pool",
    response=sc.Package,
)
def release(req, workspace, task, number):
    with req.transaction() as s:
        return sv.release(s, req.user, workspace, task, _number(number))


@router.post(
    PACKAGE + "/reassign",
    name="label.package.reassign",
    summary="Hand a package to another person",
    body=sc.PackageReassign,
    response=sc.Package,
)
def reassign(req, workspace, task, number, body: sc.PackageReassign):
    with req.transaction() as s:
        return sv.reassign(s, req.user, workspace, task, _number(number), body.to)


# ---------------------------------------------------------------- exports


@router.post(
    TASK + "/export",
    name="label.task.export",
    summary="Write an export to a path or s3:// URI (optionally register it as a dataset version)",
    body=sc.ExportRequest,
    response=sc.ExportResult,
)
def export_to(req, workspace, task, body: sc.ExportRequest):
    # The server writes only inside the folders it serves, never its state; relative paths start at its root.
    return transfer.export_to(req.platform.store, req.user, workspace, task, body, containment=_containment(req))


@router.post(
    BASE + "/convert",
    name="label.convert",
    summary="EasyVision convert: an annotation CSV (label_file) to TFRecord shards (output_tfrecord)",
    body=sc.ConvertRequest,
    response=sc.ExportResult,
)
def convert(req, workspace, body: sc.ConvertRequest):
    from pai_lab.labeling.convert import convert_in

    return convert_in(req.platform.store, req.user, workspace, body, containment=_containment(req))


@router.get(
    TASK + "/export", name="label.task.download", summary="Stream an export (chunked)", query=sc.ExportQuery, raw=True
)
async def export_stream(req, workspace, task, query: sc.ExportQuery):
    loop = asyncio.get_running_loop()
    # one thread for the whole stream: the database cursor stays on the thread that opened it
    with ThreadPoolExecutor(1, thread_name_prefix="label-export") as pool:

        def start():
            with req.transaction() as s:
                return transfer.stream(s, req.platform.store.engine, req.user, workspace, task, query.format)

        name, chunks = await loop.run_in_executor(pool, start)
        handler = req.handler
        handler.set_header(
            "Content-Type", "application/json" if name.endswith(".json") else "text/plain; charset=utf-8"
        )
        handler.set_header("Content-Disposition", f"attachment; filename*=UTF-8''{quote(name)}")
        it = iter(chunks)
        try:
            while True:
                chunk = await loop.run_in_executor(pool, next, it, None)
                if chunk is None:
                    break
                handler.write(chunk.encode("utf-8"))
                await handler.flush()
        finally:
            await loop.run_in_executor(pool, getattr(it, "close", lambda: None))
        handler.finish()
