"""``ws.labeling``: labeling tasks from Python, and everything a labeling widget needs.

    >>> task = ws.labeling.create_task("cats", "image-classification", labels=["cat", "dog"],
    ...                                 lines=[{"data": {"source": "a.jpg"}}])
    >>> pkg = task.claim()                       # the next package from the pool
    >>> for item in task.items(pkg):
    ...     task.submit(item.seq, "cat")         # stored at once; retries are idempotent
    >>> task.submit_package(pkg)
    >>> task.stats(); task.export(format="coco", to="cats.json")
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable


from pai_lab.client import table
from pai_lab.labeling import schemas as sc

STREAMED = {"itag", "easyvision", "label-studio", "coco", "conll"}

if TYPE_CHECKING:  # pandas loads on first use: the CLI starts faster without it
    import pandas as pd


def _number(package) -> int:
    return package.number if isinstance(package, sc.Package) else int(package)


class Task:
    """One labeling task. ``info`` is its state when last fetched (``refresh()`` fetches again)."""

    def __init__(self, labeling: "Labeling", info: sc.Task):
        self._lab = labeling
        self.info = info

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

    def stats(self) -> sc.TaskStats:
        return sc.TaskStats.model_validate(self._get("/stats"))

    def packages(self, state: str | None = None) -> list[sc.Package]:
        params = {"state": state} if state else None
        return [sc.Package.model_validate(p) for p in self._get("/packages", params=params)]

    def all_items(self, offset: int = 0, limit: int = 100) -> list[sc.Item]:
        return [sc.Item.model_validate(i) for i in self._get("/items", params={"offset": offset, "limit": limit})]

    def history(self, item: int) -> list[sc.AnswerHistory]:
        return [sc.AnswerHistory.model_validate(a) for a in self._get(f"/items/{item}/history")]

    # ------------------------------------------------------------ work (what the widgets call)

    def claim(self, stage: str = "label") -> sc.Package | None:
        """The package you hold in ``stage``, else the next one from its pool; None when none is left."""
        data = self._post("/claim", {"stage": stage})
        return sc.Package.model_validate(data) if data else None

    def items(self, package) -> list[sc.Item]:
        """A package's items with their data, pre-labels (suggestions) and answers so far."""
        return [sc.Item.model_validate(i) for i in self._get(f"/packages/{_number(package)}/items")]

    def submit(self, item: int, answer: Any = None, *, results: list | None = None, client_id: str | None = None,
               stage: str | None = None, skip: str | None = None) -> sc.AnswerAck:
        """Store one item's answer now. ``answer`` is a simple answer (a label, a dict keyed by
        question title...) or ``results`` the iTAG results list; ``skip`` marks the item invalid.
        The ``client_id`` (one is made if not given) makes a retry store nothing twice."""
        body = {"item": int(item), "client_id": client_id or uuid.uuid4().hex, "stage": stage, "results": results,
                "answer": answer, "skip": skip}
        body = {k: v for k, v in body.items() if v is not None}
        return sc.AnswerAck.model_validate(self._post("/answers", body))

    def submit_package(self, package) -> sc.Package:
        return sc.Package.model_validate(self._post(f"/packages/{_number(package)}/submit"))

    def passes(self, package, comment: str = "") -> sc.Package:
        """Pass a package you are checking or accepting (modify first with ``submit(..., stage=)``)."""
        return sc.Package.model_validate(self._post(f"/packages/{_number(package)}/pass", {"comment": comment}))

    def reject(self, package, comment: str) -> sc.Package:
        """Send a package back to its labeler with what to fix."""
        return sc.Package.model_validate(self._post(f"/packages/{_number(package)}/reject", {"comment": comment}))

    def release(self, package) -> sc.Package:
        return sc.Package.model_validate(self._post(f"/packages/{_number(package)}/release"))

    def reassign(self, package, to: str) -> sc.Package:
        return sc.Package.model_validate(self._post(f"/packages/{_number(package)}/reassign", {"to": to}))

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

    def copy(self, name: str) -> "Task":
        return Task(self._lab, sc.Task.model_validate(self._post("/copy", {"name": name})))

    def delete(self) -> None:
        self._lab._ws._delete(self._p())

    # ------------------------------------------------------------ pre-labels

    def prelabel(self, predict: Callable[[dict], Any] | None = None, *, source: str = "python",
                 predictions: dict[int, Any] | None = None, batch: int = 200, progress: bool = True) -> int:
        """Attach suggestions: ``predict(data) -> answer`` is called for each item (or give
        ``predictions`` as {item seq: answer or results}). Shown as suggestions, never answers."""
        from tqdm.auto import tqdm

        attached = 0
        if predictions is not None:
            pending = [_prelabel(k, v) for k, v in predictions.items()]
            for i in range(0, len(pending), batch):
                attached += self._post("/prelabels", {"source": source, "items": pending[i:i + batch]})["attached"]
            return attached
        if predict is None:
            raise TypeError("give predict=<callable> or predictions={item: answer}")
        total = self.refresh().total
        with tqdm(total=total, desc=f"pre-labels for {self.name}", disable=not progress) as bar:
            for offset in range(0, total, batch):
                items = self.all_items(offset, batch)
                body = [_prelabel(i.seq, predict(i.data)) for i in items]
                attached += self._post("/prelabels", {"source": source, "items": body})["attached"]
                bar.update(len(items))
        return attached

    def prelabel_from_service(self, service: str, to_answer: Callable[[dict, Any], Any], *,
                              inputs: Callable[[dict], Any] | None = None, batch: int = 50,
                              progress: bool = True) -> int:
        """Suggestions from a served model: ``inputs(data)`` (default: the item's data) is sent
        to the service's predict, ``to_answer(data, prediction)`` turns its reply into an answer."""
        svc = self._lab._ws.services.get(service)
        make_input = inputs or (lambda data: data)
        return self.prelabel(lambda data: to_answer(data, svc.predict(make_input(data))),
                             source=f"service:{service}", batch=batch, progress=progress)

    # ------------------------------------------------------------ export

    def export(self, format: str = "itag", to: str | os.PathLike | None = None, *, register_as: str | None = None,
               options: dict | None = None, storage_options: dict | None = None, server_side: bool = False):
        """Export the task. Single-file formats stream to ``to`` from here (or return the text
        when ``to`` is None); folder formats (yolo, tfrecord), s3:// URIs, ``register_as`` and
        ``server_side=True`` are written by the server."""
        if to is None:
            if format not in STREAMED:
                raise ValueError(f"{format} exports are folders: give to=<path>")
            resp = self._lab._ws.http.get(f"/workspaces/{self._lab._ws.name}{self._p('/export')}",
                                          params={"format": format}, stream=True)
            return resp.content.decode("utf-8")
        to = os.fspath(to)
        if format in STREAMED and not (server_side or register_as or "://" in to or options or storage_options):
            resp = self._lab._ws.http.get(f"/workspaces/{self._lab._ws.name}{self._p('/export')}",
                                          params={"format": format}, stream=True, timeout=3600)
            path = Path(to)
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(path.name + f".tmp-{uuid.uuid4().hex[:8]}")
            try:
                with open(tmp, "wb") as f:
                    for chunk in resp.iter_content(1 << 16):
                        f.write(chunk)
                os.replace(tmp, path)
            finally:
                tmp.unlink(missing_ok=True)
            return sc.ExportResult(format=format, to=to, items=self.info.total, files=[to])
        body = {"format": format, "to": to if "://" in to else str(Path(to).resolve()), "register_as": register_as,
                "options": options or {}, "storage_options": storage_options or {}}
        return sc.ExportResult.model_validate(self._post("/export", body, timeout=3600))

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


def _prelabel(item: int, value: Any) -> dict:
    if isinstance(value, list) and value and isinstance(value[0], dict) and (
            "questionId" in value[0] or "objects" in value[0]):
        return {"item": int(item), "results": value}
    return {"item": int(item), "answer": value}


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

    def create_task(self, name: str, template: str, *, dataset: str | None = None, dataset_version: int | None = None,
                    lines: Iterable[dict] | None = None, labels: list | None = None, **options) -> Task:
        """Create a task over a dataset (or inline manifest lines). Options: multi, flow,
        check_ratio, package_size, package_by, labelers, checkers, acceptors, admins,
        relation_labels, content_keys, description."""
        body = {"name": name, "template": template, "dataset": dataset, "dataset_version": dataset_version,
                "lines": list(lines) if lines is not None else None, "labels": labels or [], **options}
        body = {k: v for k, v in body.items() if v is not None}
        return Task(self, sc.Task.model_validate(self._ws._post("/labeling/tasks", body)))

    def import_task(self, path: str | os.PathLike, *, name: str, format: str = "itag", template: str | None = None,
                    **options) -> Task:
        """Create a task from a result file (iTAG manifest, Label Studio JSON, COCO)."""
        content = Path(path).read_text(encoding="utf-8")
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
        return table([t.info for t in self.list()],
                     ["name", "id", "template", "state", "total", "labeled", "checked", "accepted", "my_roles"])

    def _repr_html_(self) -> str:
        return self.to_pandas().to_html(index=False)

    def __iter__(self):
        return iter(self.list())

    def __getitem__(self, id_or_name: str) -> Task:
        return self.get(id_or_name)
