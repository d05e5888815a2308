"""Exports and imports of whole tasks.

Exports stream: the items are read in order with a server-side cursor and written chunk by
chunk, either to an HTTP response or to a local path / ``s3://`` URI through fsspec (written
under a temporary name and renamed, so a failed export leaves nothing half-written behind). An
export can also be registered as a new version of a dataset, linked to the task.
"""

from __future__ import annotations

import glob
import os
import uuid
from collections.abc import Iterator
from typing import Any

import fsspec
from sqlalchemy import select
from sqlalchemy.orm import Session

from pai_lab.errors import BadInput, Conflict
from pai_lab.labeling import formats, items, tasks
from pai_lab.labeling import schemas as sc
from pai_lab.labeling.formats import ExportContext, Row
from pai_lab.labeling.tables import ItemRow
from pai_lab.labeling.templates import TemplateSpec, parse_spec
from pai_lab.security.paths import scheme_of
from pai_lab.workspaces import authorize

_COLUMNS = (
    ItemRow.seq,
    ItemRow.data,
    ItemRow.label,
    ItemRow.check,
    ItemRow.verify,
    ItemRow.prelabel,
    ItemRow.prelabel_source,
    ItemRow.skipped,
    ItemRow.prelabel_score,
    ItemRow.label_origin,
    ItemRow.check_origin,
    ItemRow.verify_origin,
)


def _rows(engine, task_id: str) -> Iterator[Row]:
    with engine.connect() as conn:
        result = conn.execution_options(stream_results=True, yield_per=5000).execute(
            select(*_COLUMNS).where(ItemRow.task_id == task_id).order_by(ItemRow.seq)
        )
        for r in result:
            yield Row(*r)


def context(s: Session, engine, user: str, ws: str, ref: str, fmt: str, options: dict | None = None):
    """Check the caller may export ``ref`` and that ``fmt`` fits its template."""
    access = authorize(s, user, ws, "label.manage")
    task = tasks.find_task(s, access.workspace_id, ref)
    module = formats.exporter(fmt)
    ctx = ExportContext(
        task_id=task.id,
        name=task.name,
        template=task.template,
        spec=TemplateSpec.model_validate(task.spec),
        labels=[lab["name"] for lab in task.labels],
        flow=task.flow,
        rows=lambda: _rows(engine, task.id),
        options=dict(options or {}),
    )
    module.fits(ctx)
    return ctx, module, task


def stream(s: Session, engine, user: str, ws: str, ref: str, fmt: str) -> tuple[str, Iterator[str]]:
    """(file name, chunks) for a single-file format, to send as an HTTP response."""
    if fmt in formats.FOLDER_FORMATS:
        raise BadInput(f"{fmt} exports are a folder of files; export them to a path or s3:// URI with `to`", "format")
    ctx, module, task = context(s, engine, user, ws, ref, fmt)
    if getattr(module, "needs_folder", None) and module.needs_folder(ctx):
        raise BadInput(
            f"this {fmt} export writes files beside the CSV; export it to a path or s3:// URI with `to`", "to"
        )
    return f"{task.name}{formats.SUFFIX[fmt]}", module.export(ctx)


def _is_remote(path: str) -> bool:
    return scheme_of(path) != ""


def write_file(chunks: Iterator[str], to: str, storage_options: dict | None = None) -> None:
    """Write a text stream to ``to`` under a temporary name, then move it into place."""
    fs, path = fsspec.core.url_to_fs(to, **(storage_options or {}))
    parent = os.path.dirname(path)
    if parent and not _is_remote(to):
        fs.makedirs(parent, exist_ok=True)
    tmp = f"{path}.tmp-{uuid.uuid4().hex[:8]}"
    try:
        with fs.open(tmp, "wb") as f:
            for chunk in chunks:
                f.write(chunk.encode("utf-8"))
        fs.mv(tmp, path)
    except BaseException:
        try:
            fs.rm(tmp)
        except Exception:  # noqa: BLE001, S110 - nothing was written, or the store went away
            pass
        raise


def _local_folder(module, ctx: ExportContext, to: str) -> list[str]:
    """Write a folder export beside ``to`` and swap it in when complete."""
    import shutil

    target = os.path.abspath(to.removeprefix("file://"))
    tmp = f"{target}.tmp-{uuid.uuid4().hex[:8]}"
    fs = fsspec.filesystem("file")
    ctx.destination = target
    try:
        written = module.export_to(ctx, fs, tmp)
        if os.path.isdir(target):
            shutil.rmtree(target)
        os.replace(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return [target + f[len(tmp) :] for f in written]


def export_to(store, user: str, ws: str, ref: str, body: sc.ExportRequest, containment=None) -> sc.ExportResult:
    """Write an export where ``body.to`` says. Local targets go through ``containment`` (the server's
    :class:`pai_lab.security.paths.Containment`): inside the roots, never the state folder, and an
    existing target only with ``overwrite``."""
    with store.transaction() as s:
        ctx, module, task = context(s, store.engine, user, ws, ref, body.format, body.options)
        total = task.total
    overwrite = bool(getattr(body, "overwrite", False))
    to = body.to
    if containment is not None:
        # where the export is written and which images it reads: the policy decides, nothing here
        ctx.check_source = lambda source: str(containment.readable(source, "source"))
        to = str(containment.writable(to, "to", overwrite=overwrite, options=body.storage_options))
        if body.format == "tfrecord" and not _is_remote(to):  # a prefix of shard files: each one is a target too
            for existing in sorted(glob.glob(glob.escape(to) + "_*")):
                containment.writable(existing, "to", overwrite=overwrite)
    if _is_remote(to) and not overwrite:
        fs, path = fsspec.core.url_to_fs(to, **body.storage_options)
        if fs.exists(path):
            raise Conflict(f"to {to!r} already exists; give overwrite=true to replace it, or another path", "to")
    if body.format == "yolo" and not _is_remote(to):
        files = _local_folder(module, ctx, to)
    elif body.format in formats.FOLDER_FORMATS or (getattr(module, "needs_folder", None) and module.needs_folder(ctx)):
        fs, path = fsspec.core.url_to_fs(to, **body.storage_options)
        files = module.export_to(ctx, fs, path)
        files = [fs.unstrip_protocol(f) if _is_remote(to) else f for f in files]
    else:
        write_file(module.export(ctx), to, body.storage_options)
        files = [to]
    result = sc.ExportResult(format=body.format, to=to, items=total, files=files, notes=ctx.notes)
    if body.register_as:
        if body.format != "itag":
            raise BadInput("only iTAG manifests are registered as datasets; export with format=itag", "register_as")
        result.dataset, result.dataset_version = _register(store, user, ws, ctx, body.register_as)
    return result


def _register(store, user: str, ws: str, ctx: ExportContext, name: str) -> tuple[str, int | None]:
    try:
        from pai_lab.datasets.service import register_manifest_version
    except ImportError:
        raise BadInput(
            "datasets are not available in this installation; the export was written but not registered", "register_as"
        ) from None
    import json

    from pai_lab.labeling.formats.itag import lines

    with store.transaction() as s:
        info = register_manifest_version(
            s,
            user,
            ws,
            name,
            (json.loads(line) for line in lines(ctx)),
            source="labeling",
            description=f"labels of task {ctx.name} ({ctx.task_id})",
        )
    return info.name, info.latest_version


def import_task(s: Session, user: str, ws: str, body: sc.ImportRequest, containment=None) -> sc.Task:
    """Create a task from a result file, each answer kept in the stage it was in; ``containment`` checks
    the paths and URLs its items name."""
    access = authorize(s, user, ws, "label.manage")
    hint = None
    if body.template:
        hint = tasks.resolve_template(
            s, access.workspace_id, body.template, multi=bool(body.multi), relation_labels=[], has_labels=True
        )
    module = formats.importer(body.format)
    if getattr(module, "READS_FILES", False):  # reads images and masks the file names, as the policy allows
        names = [lab if isinstance(lab, str) else lab.name for lab in body.labels]
        parsed = module.parse(body.content, hint, read=_reader(containment), labels=names, base=body.base)
    else:
        parsed = module.parse(body.content, hint)
    template = body.template or parsed.template
    if template is None:
        raise BadInput("cannot tell the template from the file; give it with template=<id>", "template")
    stages = parsed.stages or ["label"]
    flow = body.flow or (
        "label" if stages == ["label"] else "-".join(["label"] + [s for s in ("check", "accept") if s in stages])
    )
    if body.as_prelabels:
        for item in parsed.items:
            item.prelabel = next((item.answers[st] for st in ("accept", "check", "label") if st in item.answers), None)
            item.answers = {}
    labels, relation_labels = parsed.labels, parsed.relation_labels
    if hint is not None:  # the template says which values are labels
        labels, relation_labels = formats.collect_labels(
            hint, [r for i in parsed.items for r in ([*list(i.answers.values()), i.prelabel])]
        )
        labels = labels or parsed.labels
    create = sc.TaskCreate(
        name=body.name,
        template=template,
        labels=body.labels or labels,
        multi=parsed.multi if body.multi is None else body.multi,
        flow=flow,
        relation_labels=relation_labels or parsed.relation_labels,
        package_size=body.package_size,
    )
    if parsed.spec is not None and template == parsed.template:  # a custom template the file's answers need
        try:
            found = tasks.resolve_template(
                s, access.workspace_id, template, multi=False, relation_labels=[], has_labels=True
            )
        except BadInput:
            tasks.create_template(s, user, ws, parsed.spec)
        else:
            if found != parse_spec(parsed.spec):
                raise BadInput(
                    f"this workspace's template {template!r} differs from the one these answers need; "
                    "give template=<a template of yours that fits them>",
                    "template",
                )
    task_id = parsed.task_id if body.keep_id else None
    if task_id is not None and not (13 <= len(task_id) <= 19):
        task_id = None
    return tasks.create_task(
        s,
        user,
        ws,
        create,
        items=parsed.items,
        task_id=task_id,
        source=f"import:{body.format}",
        containment=containment,
    )


def _reader(containment):
    """Bytes of a source an imported file names, through the server's policy for sources."""

    from pai_lab.labeling.media import MAX_MEDIA_BYTES

    def read(source: str) -> bytes:
        where = str(containment.readable(source, "content")) if containment is not None else source
        try:
            fs, path = fsspec.core.url_to_fs(where)
            if (fs.size(path) or 0) <= MAX_MEDIA_BYTES:  # the size first: a huge file is never read
                with fs.open(path, "rb") as f:
                    data = f.read(MAX_MEDIA_BYTES + 1)
                if len(data) <= MAX_MEDIA_BYTES:
                    return data
        except (OSError, ValueError) as exc:
            raise BadInput(f"cannot read {source!r}: {exc}", "content") from None
        raise BadInput(
            f"{source!r} is over {MAX_MEDIA_BYTES >> 20} MiB; an imported file's images and masks are read into "
            "memory, so make them smaller",
            "content",
        )

    return read


def prelabel_items(s: Session, user: str, ws: str, ref: str, offset: int, limit: int) -> list[dict[str, Any]]:
    """Items with their data, for computing predictions client-side."""
    return [{"item": i.seq, "data": i.data} for i in items.list_items(s, user, ws, ref, offset, limit)]
