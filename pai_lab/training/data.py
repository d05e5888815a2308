"""A job's data sources (PAI's ``--data_sources``), resolved at submit time.

Each source is ``NAME`` (a registered dataset, latest version), ``NAME:VERSION`` or ``task:TASK`` (a
labeling task's answers, by name or id; the final stage's answer wins: accept > check > label). Its
manifest lines are snapshotted into the job's folder with what a rank needs to read them (data type,
class names, storage options), so ranks need neither the owner's token nor the state database and a
job reads exactly the labels that existed when it was submitted. The rank side is
:mod:`pai_lab.training.reader`.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from pai_lab.errors import BadInput, NotFound
from pai_lab.schema import whole_number

SOURCES_FILE = "sources.json"
ENV_VAR = "PAI_LAB_DATA_SOURCES"
_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")


def parse(ref: str) -> tuple[str, str, int | None]:
    """``task:NAME`` -> ("task", NAME, None); ``NAME:3`` -> ("dataset", NAME, 3); ``NAME`` -> latest."""
    ref = ref.strip()
    if ref.startswith("task:"):
        name = ref[len("task:") :].strip()
        if not name:
            raise BadInput("data source 'task:' names no task; write task:<task name or id>", "data_sources")
        return "task", name, None
    name, sep, version = ref.rpartition(":")
    if sep and whole_number(version) is not None and name:
        return "dataset", name, whole_number(version)
    if sep and "://" not in ref:
        raise BadInput(f"data source {ref!r}: write NAME, NAME:VERSION (a whole number) or task:TASK", "data_sources")
    return "dataset", ref, None


def _bad(ref: str, why: str) -> BadInput:
    return BadInput(f"data source {ref!r}: {why}", "data_sources")


def _results(text: str | None):
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return None


def _task_lines(session: Session, task) -> Iterator[dict]:
    """The task's items with their final answer, as iTAG export lines; unanswered items left out."""
    from sqlalchemy import select

    from pai_lab.labeling.tables import ItemRow

    rows = session.execute(
        select(ItemRow.data, ItemRow.label, ItemRow.check, ItemRow.verify, ItemRow.skipped)
        .where(ItemRow.task_id == task.id)
        .order_by(ItemRow.seq)
    )
    for data, label, check, verify, skipped in rows:
        final = _results(verify) or _results(check) or _results(label)
        if skipped or not final:
            continue
        yield {"data": json.loads(data), f"label-{task.id}": {"results": final}}


class Lines:
    """A source's manifest lines spooled to a temporary file as they stream from the store (a large
    dataset is never held in memory), with what the pass learnt: the first lines, the labels seen."""

    HEAD = 200

    def __init__(self, lines: Iterable[dict] = ()):
        self.file = tempfile.TemporaryFile("w+b")  # noqa: SIM115 - closed by write_snapshot / close
        self.count = 0
        self.head: list[dict] = []
        self.classes: set[str] = set()
        self.box_labels: set[str] = set()
        self.folders: set[str] = set()
        self.boxed = False
        for line in lines:
            self.add(line)

    def add(self, line: dict) -> None:
        from pai_lab.datasets.readers import boxes, class_label, export_result, folder_label

        self.file.write(json.dumps(line, ensure_ascii=False, separators=(",", ":")).encode("utf-8") + b"\n")
        self.count += 1
        if len(self.head) < self.HEAD:
            self.head.append(line)
        if any(isinstance(r, dict) and r.get("type") == "image" for r in export_result(line) or []):
            self.boxed = True
            self.box_labels.update(str(b["label"]) for b in boxes(line) if b["label"] is not None)
        label = class_label(line)
        if label is not None:
            self.classes.add(label)
        source = (line.get("data") or {}).get("source")
        folder = folder_label(source) if isinstance(source, str) else None
        if folder and len(self.folders) <= 10_000:
            self.folders.add(folder)

    def copy_to(self, path: Path) -> None:
        self.file.seek(0)
        with open(path, "wb") as out:
            shutil.copyfileobj(self.file, out)

    def close(self) -> None:
        self.file.close()


def infer_type(lines: Lines, declared: str = "") -> str:
    """image, text or detection, from the answers (any box makes it detection) and the first sources."""
    if lines.boxed:
        return "detection"
    if declared in ("image", "text"):
        return declared
    found = [(ln.get("data") or {}).get("source") for ln in lines.head[:50]]
    sources = [s for s in found if isinstance(s, str)]
    if sources and all(s.lower().endswith(_IMAGE_SUFFIXES) for s in sources):
        return "image"
    return "text" if sources else declared or "image"


def class_names(lines: Lines, data_type: str) -> list[str]:
    """Sorted class names: the boxes' labels, the answers' classes, else one folder per class."""
    if data_type == "detection":
        return sorted(lines.box_labels)
    if lines.classes:
        return sorted(lines.classes)
    if data_type == "image" and len(lines.folders) >= 2:
        return sorted(lines.folders)
    return []


def _resolve_one(session: Session, user: str, workspace: str, ref: str) -> tuple[dict, Lines]:
    kind, name, version = parse(ref)
    if kind == "task":
        from pai_lab.labeling import service as labeling

        try:
            task = labeling.task_row(session, user, workspace, name)
        except NotFound:
            raise _bad(
                ref, "no labeling task by that name or id in this workspace; `pai label ls` lists them"
            ) from None
        lines = Lines(_task_lines(session, task))
        if not lines.count:
            lines.close()
            raise _bad(ref, f"task {task.name!r} has no answered items yet; label some first")
        options: dict = {}
        if task.dataset:
            options = _storage_options(session, user, workspace, task.dataset)
        data_type = infer_type(lines)
        names = [label["name"] for label in task.labels or []] or class_names(lines, data_type)
        info: dict[str, Any] = {
            "name": ref,
            "kind": "task",
            "task": task.name,
            "task_id": task.id,
            "template": task.template,
        }
    else:
        from pai_lab.datasets import service as datasets

        try:
            dataset = datasets.get_dataset(session, user, workspace, name)
            # a dataset registered without a scan has no version yet: it is only mounted, as before
            unscanned = version is None and dataset.latest_version is None
            lines = Lines([] if unscanned else datasets.iter_items(session, user, workspace, name, version=version))
        except NotFound as exc:
            why = (
                str(exc)
                if exc.field == "version"
                else (
                    "is not a registered dataset of this workspace; register "
                    "it with `pai dataset register` or check `pai dataset ls`"
                )
            )
            raise _bad(ref, why) from None
        except BadInput as exc:
            raise _bad(ref, str(exc)) from None
        options = _storage_options(session, user, workspace, name)
        data_type = infer_type(lines, dataset.data_type)
        names = class_names(lines, data_type)
        info = {"name": ref, "kind": "dataset", "dataset": dataset.name, "version": version or dataset.latest_version}
    info.update(data_type=data_type, class_names=names, storage_options=options, items=lines.count)
    return info, lines


def _storage_options(session: Session, user: str, workspace: str, dataset: str) -> dict:
    from pai_lab.datasets.service import storage_options_for

    try:
        return storage_options_for(session, user, workspace, dataset)
    except (NotFound, BadInput):
        return {}


def resolve(session: Session, user: str, workspace: str, refs: Iterable[str]) -> list[tuple[dict, Lines]]:
    """Check every data source and spool its lines; a bad name is a 400 naming ``data_sources``."""
    out: list[tuple[dict, Lines]] = []
    seen = set()
    try:
        for ref in refs:
            if ref in seen:
                raise _bad(ref, "is given twice")
            seen.add(ref)
            out.append(_resolve_one(session, user, workspace, ref))
    except BaseException:
        for _info, lines in out:
            lines.close()
        raise
    return out


def write_snapshot(folder: Path, resolved: list[tuple[dict, Lines]]) -> Path:
    """``<folder>/sources.json`` and one manifest per source (named relative to it, so the folder can
    be shipped to a worker that cannot see this machine). Readable by the owner only: it may hold
    storage secrets."""
    folder.mkdir(parents=True, exist_ok=True)
    sources = []
    for i, (info, lines) in enumerate(resolved):
        manifest = f"{i}.manifest"
        lines.copy_to(folder / manifest)
        lines.close()
        sources.append({**info, "manifest": manifest})
    path = folder / SOURCES_FILE
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump({"sources": sources}, f, ensure_ascii=False, default=str)
    return path


def pack(folder: Path) -> dict[str, str]:
    """The snapshot's files as text, for workers on other machines (empty when too large to ship)."""
    files = {p.name: p.read_text(encoding="utf-8") for p in folder.iterdir() if p.is_file()}
    return files if sum(len(v) for v in files.values()) <= 64 * 2**20 else {}
