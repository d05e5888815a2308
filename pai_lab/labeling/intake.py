"""Items into a task: checking manifest lines, packaging them, storing any answers they carry.

A task's items come from a dataset, inline lines, an imported result file or a copied task;
all of them go through :func:`insert_items`, which packages them (by a fixed size or by a field
of the data) and starts each package in the first stage some of its items still lack.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session

from pai_lab.errors import BadInput
from pai_lab.labeling import flow as fl
from pai_lab.labeling.answers import Checker, dumps
from pai_lab.labeling.tables import AnswerRow, ItemRow, PackageRow, TaskRow
from pai_lab.labeling.templates import TemplateSpec
from pai_lab.store import utcnow

# Seed rule: the smallest fixed package size allowed for a dataset of up to N items.
MIN_PACKAGE = ((20_000, 1), (100_000, 5), (500_000, 25), (1_000_000, 50))


def min_package_size(total: int) -> int:
    for limit, size in MIN_PACKAGE:
        if total <= limit:
            return size
    raise BadInput(f"a task holds at most 1,000,000 items; this one has {total:,}; split the dataset", "dataset")


@dataclass
class NewItem:
    """One manifest line to add to a task, with any answers it already carries."""

    data: dict
    answers: dict[str, list] = field(default_factory=dict)  # stage -> results
    skipped: str | None = None
    prelabel: list | None = None


def check_line(line: Any, where: str, keys: set[str]) -> dict:
    if not isinstance(line, dict) or not isinstance(line.get("data"), dict):
        raise BadInput(f'{where}: a manifest line must be an object {{"data": {{...}}}}', "lines")
    missing = [k for k in keys if k not in line["data"]]
    if missing:
        raise BadInput(
            f"{where}: data has no {missing[0]!r} key, which the template shows; bind another key with content_keys",
            "lines",
        )
    return line["data"]


def lines_from_dataset(s: Session, user: str, ws: str, dataset: str, version: int | None) -> Iterator[dict]:
    try:
        from pai_lab.datasets.service import iter_items
    except ImportError:
        raise BadInput(
            "datasets are not available in this installation; pass the manifest lines inline", "dataset"
        ) from None
    return iter_items(s, user, ws, dataset, version=version)


def contained(items: Iterable[NewItem], keys: set[str], containment, field: str) -> Iterator[NewItem]:
    """Items whose shown values (and ``source``) name paths or URLs the server's policy allows."""
    for i, item in enumerate(items):
        try:
            containment.check_item(item.data, field, sorted(keys | {"source"}))
        except BadInput as exc:
            raise BadInput(f"line {i + 1}: {exc.message}", field) from None
        yield item


def _package_key(data: dict, field_name: str, where: str) -> str:
    name = field_name.removeprefix("data.")
    if name not in data:
        raise BadInput(f"{where}: data has no {name!r} field to package by", "package_by")
    value = data[name]
    return value if isinstance(value, str) else dumps(value)


def insert_items(s: Session, task: TaskRow, spec: TemplateSpec, items: Iterable[NewItem], *, author: str) -> None:
    checker = Checker(spec, [lab["name"] for lab in task.labels])
    order = fl.stages(task.flow)
    packages: dict[Any, PackageRow] = {}
    reached: dict[int, list[int]] = {}  # package id -> items answered per stage
    now = utcnow()
    batch: list[dict] = []
    seq = 0

    def package_for(data: dict) -> PackageRow:
        if task.package_by:
            key: Any = _package_key(data, task.package_by, f"line {seq + 1}")
        else:
            assert task.package_size is not None  # set whenever package_by is not
            key = seq // task.package_size
        pkg = packages.get(key)
        if pkg is None:
            pkg = PackageRow(
                task_id=task.id,
                number=len(packages) + 1,
                key=key if task.package_by else None,
                size=0,
                state=fl.POOL["label"],
                rework=0,
                comment="",
                updated_at=now,
            )
            s.add(pkg)
            s.flush()
            packages[key] = pkg
            reached[pkg.id] = [0, 0, 0]
        return pkg

    def flush() -> None:
        if not batch:
            return
        answered = [(row["seq"], row.pop("_answers")) for row in batch]
        s.connection().execute(insert(ItemRow), batch)  # executemany: the fast path
        if any(a for _, a in answered):
            ids = dict(
                s.execute(
                    select(ItemRow.seq, ItemRow.id).where(
                        ItemRow.task_id == task.id, ItemRow.seq.between(answered[0][0], answered[-1][0])
                    )
                ).all()
            )
            rows = []
            for seq_, stored in answered:
                for rev, (stage, text, skip) in enumerate(stored, 1):
                    rows.append(
                        {
                            "task_id": task.id,
                            "item_id": ids[seq_],
                            "stage": stage,
                            "revision": rev,
                            "results": text,
                            "skip_reason": skip,
                            "client_id": None,
                            "author": author,
                            "created_at": now,
                        }
                    )
            if rows:
                s.connection().execute(insert(AnswerRow), rows)
        batch.clear()

    for item in items:
        pkg = package_for(item.data)
        pkg.size += 1
        row: dict[str, Any] = {
            "task_id": task.id,
            "seq": seq,
            "package_id": pkg.id,
            "data": dumps(item.data),
            "sampled": True,
            "skipped": item.skipped,
            "label": None,
            "check": None,
            "verify": None,
            "prelabel": None,
            "prelabel_source": None,
            "revision": 0,
            "_answers": [],
        }
        where = f"line {seq + 1}"
        if item.prelabel is not None:
            row["prelabel"] = dumps(normalize(checker, item.prelabel, item.data, where, strict=False))
            row["prelabel_source"] = "import"
        if item.skipped is not None:
            row["_answers"].append(("label", None, item.skipped))
        for stage in order:
            results = item.answers.get(stage)
            if results is None:
                continue
            text = dumps(normalize(checker, results, item.data, where, strict=False))
            row[fl.STAGE_COLUMN[stage]] = text
            row["_answers"].append((stage, text, None))
        for i, stage in enumerate(order):
            if item.answers.get(stage) is not None or (stage == "label" and item.skipped is not None):
                reached[pkg.id][i] += 1
        row["revision"] = len(row["_answers"])
        batch.append(row)
        seq += 1
        if len(batch) >= 2000:
            flush()
    flush()
    if seq == 0:
        raise BadInput("there are no items to label: the manifest is empty", "lines")
    if task.package_size:
        check_package_size(task.package_size, seq)
    if len(packages) > 20_000:
        raise BadInput(
            f"package_by {task.package_by!r} makes {len(packages):,} packages; at most 20,000 are "
            "allowed: pick a coarser field",
            "package_by",
        )
    # Imported answers: a package starts in the first stage some of its items still lack.
    for pkg in packages.values():
        counts = reached[pkg.id]
        state = fl.DONE
        for i, stage in enumerate(order):
            if counts[i] < pkg.size:
                state = fl.POOL[stage]
                break
        pkg.state = state
    if task.check_ratio < 1 and "check" in order:
        sample(s, task, list(packages.values()))
    task.total = seq
    task.initialized = True
    s.flush()


def check_package_size(size: int, total: int) -> None:
    if size < min_package_size(total):
        raise BadInput(
            f"package_size {size} is too small for {total:,} items; use at least "
            f"{min_package_size(total)} (at most 20,000 packages per task)",
            "package_size",
        )


def normalize(checker: Checker, results: Any, data: dict, where: str, *, strict: bool) -> list:
    try:
        return checker.normalize(results, data, strict=strict)
    except BadInput as exc:
        raise BadInput(f"{where}: {exc.message}", exc.field) from None


def sample(s: Session, task: TaskRow, packages: list[PackageRow]) -> None:
    """Pick ceil(ratio * size) items of each package for checking; the rest skip the check."""
    for pkg in packages:
        ids = list(s.scalars(select(ItemRow.id).where(ItemRow.package_id == pkg.id).order_by(ItemRow.seq)))
        keep = set(random.Random(f"{task.id}:{pkg.number}").sample(ids, math.ceil(task.check_ratio * len(ids))))
        skip = [i for i in ids if i not in keep]
        if skip:
            s.execute(update(ItemRow).where(ItemRow.id.in_(skip)).values(sampled=False))
