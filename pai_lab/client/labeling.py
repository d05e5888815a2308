"""``ws.labeling``: labeling tasks from Python, and everything a labeling widget needs.

>>> task = ws.labeling.create_task("cats", "image-classification", labels=["cat", "dog"],
...                                 lines=[{"data": {"source": "a.jpg"}}])
>>> pkg = task.claim()                       # the next package from the pool
>>> for item in task.items(pkg):
...     task.submit(item.seq, "cat")         # stored at once; retries are idempotent
>>> task.submit_package(pkg)
>>> task.stats(); task.export(format="coco", to="cats.json")

A :class:`Task`'s package side is :mod:`pai_lab.client.labeling_work`, its suggestions
:mod:`pai_lab.client.labeling_prelabels`, its exports :mod:`pai_lab.client.labeling_exports`, and how its
figures show :mod:`pai_lab.client.labeling_views`.
"""

from __future__ import annotations

import html
import os
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pai_lab.client import table
from pai_lab.client.computing import retried_while_computing
from pai_lab.client.labeling_exports import TaskExports
from pai_lab.client.labeling_prelabels import TaskPrelabels
from pai_lab.client.labeling_views import TaskStatsView, bars
from pai_lab.client.labeling_work import TaskWork
from pai_lab.labeling import schemas as sc

if TYPE_CHECKING:  # pandas loads on first use: the CLI starts faster without it
    import pandas as pd

    from pai_lab.client import WorkspaceClient


class Task(TaskWork, TaskPrelabels, TaskExports):
    """One labeling task. ``info`` is its state when last fetched (``refresh()`` fetches again)."""

    def __init__(self, labeling: Labeling, info: sc.Task):
        self._lab = labeling
        self.info = info

    @property
    def workspace(self) -> WorkspaceClient:
        """The workspace client this task was read through."""
        return self._lab._ws

    @property
    def api_path(self) -> str:
        """The task's REST path below the server's base URL, as a page the same server serves asks for it."""
        return self.workspace.api_path(self._p())

    @property
    def id(self) -> str:
        return self.info.id

    @property
    def name(self) -> str:
        return self.info.name

    def _p(self, path: str = "") -> str:
        return f"/labeling/tasks/{self.info.id}{path}"

    def _get(self, path="", **kw):
        return self._lab._ws._get(self._p(path), **kw)

    def _post(self, path="", body=None, **kw):
        return self._lab._ws._post(self._p(path), body if body is not None else {}, **kw)

    def refresh(self) -> sc.Task:
        self.info = sc.Task.model_validate(self._get())
        return self.info

    # ------------------------------------------------------------ progress

    def stats(self) -> TaskStatsView:
        """Progress, people, agreement and what became of the suggestions (shown as tables in a notebook)."""
        return TaskStatsView.model_validate(self._get("/stats"))

    def order(
        self, by: str, *, seed: int | None = None, progress: bool | Any = True, timeout: float | None = None
    ) -> sc.OrderResult:
        """Repack the packages nobody has claimed or answered so the next ones claimed hold the most
        uncertain suggestions first: ``least_confidence``, ``margin``, ``entropy`` (from the
        suggestions' scores; unscored items last) or ``random``. For image tasks, orders that also
        compare the images (the server embeds them once per task): ``typical`` (before any
        suggestion: the next package covers the images' dense regions, a good first package) and
        ``cluster_margin`` (the next package: uncertain suggestions, one from each cluster of alike
        images). ``seed``: the random order's, or k-means' for those two.

        A large task's first image order waits while the server reads its images: this asks again
        until it is done (at most ``timeout`` seconds, default no limit), showing how far the server
        got (``progress=False``: silent; a file: shown there)."""
        body = {"by": by} if seed is None else {"by": by, "seed": seed}
        return sc.OrderResult.model_validate(
            retried_while_computing(lambda: self._post("/order", body), f"order {self.name}", progress, timeout)
        )

    def packages(self, state: str | None = None) -> list[sc.Package]:
        params = {"state": state} if state else None
        return [sc.Package.model_validate(p) for p in self._get("/packages", params=params)]

    def all_items(self, offset: int = 0, limit: int = 100) -> list[sc.TaskItem]:
        return [sc.TaskItem.model_validate(i) for i in self._get("/items", params={"offset": offset, "limit": limit})]

    def history(self, item: int) -> list[sc.AnswerHistory]:
        return [sc.AnswerHistory.model_validate(a) for a in self._get(f"/items/{item}/history")]

    # ------------------------------------------------------------ administration

    def offline(self) -> sc.Task:
        self.info = sc.Task.model_validate(self._post("/offline"))
        return self.info

    def online(self) -> sc.Task:
        self.info = sc.Task.model_validate(self._post("/online"))
        return self.info

    def set_people(self, **people: list[str]) -> sc.Task:
        self.info = sc.Task.model_validate(self._lab._ws._patch(self._p("/people"), people))
        return self.info

    def copy(self, name: str) -> Task:
        return Task(self._lab, sc.Task.model_validate(self._post("/copy", {"name": name})))

    def delete(self) -> None:
        self._lab._ws._delete(self._p())

    # ------------------------------------------------------------ widgets

    def label(self, **options):
        """The labeling widget (labeler view): claims the next package; one key per item."""
        from pai_lab.widgets.labeling import Labeler

        return Labeler(self, "label", **options)

    def check(self, **options):
        """The checker view: see each sampled item's label, modify it, pass or reject the package."""
        from pai_lab.widgets.labeling import Labeler

        return Labeler(self, "check", **options)

    def accept(self, **options):
        """The acceptor view: the final pass / modify / reject of a package."""
        from pai_lab.widgets.labeling import Labeler

        return Labeler(self, "accept", **options)

    def __repr__(self) -> str:
        i = self.info
        return f"<labeling task {i.name} ({i.id}) {i.template} {i.state}: {i.labeled}/{i.total} labeled>"

    def _repr_html_(self) -> str:
        try:
            i = self.refresh()  # a notebook shows the task as it is now
        except Exception:  # noqa: BLE001 - the server went away: show what was last fetched
            i = self.info
        e = html.escape
        labels = "".join(
            f'<span style="border-left:8px solid {e(lab.color or "#888")};padding:0 6px;margin-right:4px">'
            f"{e(lab.name)}</span>"
            for lab in i.labels
        )
        stages = (
            [("labeled", i.labeled)]
            + ([("checked", i.checked)] if "check" in i.flow else [])
            + ([("accepted", i.accepted)] if "accept" in i.flow else [])
        )
        rows = [
            ("template", e(i.template)),
            ("state", e(i.state)),
            ("flow", e(i.flow)),
            ("progress", bars(stages, i.total)),
            ("packages left", str(i.packages_left)),
            ("labels", labels or "-"),
            ("dataset", e(f"{i.dataset}:{i.dataset_version or 'latest'}") if i.dataset else "-"),
            ("your roles", e(", ".join(i.my_roles)) or "-"),
        ]
        body = "".join(
            f'<tr><th style="text-align:left;padding-right:12px">{k}</th><td style="text-align:left">{v}</td></tr>'
            for k, v in rows
        )
        about = f"<div>{e(i.description)}</div>" if i.description else ""
        return f"<div><b>labeling task {e(i.name)}</b> <code>{e(i.id)}</code>{about}<table>{body}</table></div>"


class Labeling:
    """The workspace's labeling service: templates and tasks."""

    def __init__(self, ws):
        self._ws = ws

    def templates(self) -> list[sc.TemplateInfo]:
        return [sc.TemplateInfo.model_validate(t) for t in self._ws._get("/labeling/templates")]

    def create_template(self, spec: dict | str | os.PathLike) -> sc.TemplateInfo:
        """Store a custom template given as a dict or a JSON/YAML file."""
        if not isinstance(spec, dict):
            import yaml

            spec = yaml.safe_load(Path(spec).read_text(encoding="utf-8"))
        return sc.TemplateInfo.model_validate(self._ws._post("/labeling/templates", {"spec": spec}))

    def delete_template(self, name: str) -> None:
        self._ws._delete(f"/labeling/templates/{name}")

    def create_task(
        self,
        name: str,
        template: str,
        *,
        dataset: str | None = None,
        dataset_version: int | None = None,
        lines: Iterable[dict] | None = None,
        labels: list | None = None,
        **options,
    ) -> Task:
        """Create a task over a dataset (or inline manifest lines). Options: multi, flow,
        check_ratio, package_size, package_by, labelers, checkers, acceptors, admins,
        relation_labels, content_keys, description."""
        body = {
            "name": name,
            "template": template,
            "dataset": dataset,
            "dataset_version": dataset_version,
            "lines": list(lines) if lines is not None else None,
            "labels": labels or [],
            **options,
        }
        body = {k: v for k, v in body.items() if v is not None}
        return Task(self, sc.Task.model_validate(self._ws._post("/labeling/tasks", body)))

    def import_task(
        self, path: str | os.PathLike, *, name: str, format: str = "itag", template: str | None = None, **options
    ) -> Task:
        """Create a task from a result file (iTAG manifest, Label Studio JSON, COCO, EasyVision CSV: its
        relative image and mask URLs are taken from the file's folder)."""
        content = Path(path).read_text(encoding="utf-8")
        if format == "easyvision":
            options.setdefault("base", str(Path(path).resolve().parent))
        body = {"format": format, "name": name, "template": template, "content": content, **options}
        body = {k: v for k, v in body.items() if v is not None}
        return Task(self, sc.Task.model_validate(self._ws._post("/labeling/imports", body, timeout=3600)))

    def list(self) -> list[Task]:
        return [Task(self, sc.Task.model_validate(t)) for t in self._ws._get("/labeling/tasks")]

    def get(self, id_or_name: str) -> Task:
        return Task(self, sc.Task.model_validate(self._ws._get(f"/labeling/tasks/{id_or_name}")))

    def delete(self, id_or_name: str) -> None:
        self._ws._delete(f"/labeling/tasks/{id_or_name}")

    def to_pandas(self) -> pd.DataFrame:
        return table(
            [t.info for t in self.list()],
            ["name", "id", "template", "state", "total", "labeled", "checked", "accepted", "my_roles"],
        )

    def _repr_html_(self) -> str:
        return self.to_pandas().to_html(index=False)

    def __iter__(self):
        return iter(self.list())

    def __getitem__(self, id_or_name: str) -> Task:
        return self.get(id_or_name)
