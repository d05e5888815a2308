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

import base64
import html
import os
import uuid
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pai_lab.client import table
from pai_lab.labeling import schemas as sc

STREAMED = {"itag", "easyvision", "label-studio", "coco", "conll"}

if TYPE_CHECKING:  # pandas loads on first use: the CLI starts faster without it
    import pandas as pd

    from pai_lab.client import WorkspaceClient


def _number(package) -> int:
    return package.number if isinstance(package, sc.Package) else int(package)


@dataclass
class Media:
    """An item's media as the server sends it: the bytes (an image cut to the asked view size, else the
    original), their type, and the original's size when the server knows it."""

    content: bytes
    mime: str
    width: int | None = None
    height: int | None = None


class Task:
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

    def media(self, seq: int, key: str = "source", *, width: int = 0, height: int = 0) -> Media:
        """An item's media (``key``: its data field); an image is cut to fit ``width`` x ``height`` when given."""
        params = {"key": key, "w": int(width), "h": int(height)}
        resp = self.workspace._get(self._p(f"/items/{int(seq)}/media"), params=params, stream=True)
        size = resp.headers.get("X-Original-Width"), resp.headers.get("X-Original-Height")
        return Media(
            resp.content,
            resp.headers.get("Content-Type", "application/octet-stream"),
            int(size[0] or 0) or None,
            int(size[1] or 0) or None,
        )

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

    def order(self, by: str, *, seed: int | None = None) -> sc.OrderResult:
        """Repack the packages nobody has claimed or answered so the next ones claimed hold the most
        uncertain suggestions first: ``least_confidence``, ``margin``, ``entropy`` (from the
        suggestions' scores; unscored items last) or ``random``."""
        body = {"by": by} if seed is None else {"by": by, "seed": seed}
        return sc.OrderResult.model_validate(self._post("/order", body))

    def packages(self, state: str | None = None) -> list[sc.Package]:
        params = {"state": state} if state else None
        return [sc.Package.model_validate(p) for p in self._get("/packages", params=params)]

    def all_items(self, offset: int = 0, limit: int = 100) -> list[sc.TaskItem]:
        return [sc.TaskItem.model_validate(i) for i in self._get("/items", params={"offset": offset, "limit": limit})]

    def history(self, item: int) -> list[sc.AnswerHistory]:
        return [sc.AnswerHistory.model_validate(a) for a in self._get(f"/items/{item}/history")]

    # ------------------------------------------------------------ work (what the widgets call)

    def claim(self, stage: str = "label") -> sc.Package | None:
        """The package you hold in ``stage``, else the next one from its pool; None when none is left."""
        data = self._post("/claim", {"stage": stage})
        return sc.Package.model_validate(data) if data else None

    def open(self, stage: str = "label") -> sc.Opened:
        """In one request: the package you hold in ``stage`` (else the next from its pool) with the items the
        stage shows and their answers, the stage table and the task's counters (what the labeler opens)."""
        return sc.Opened.model_validate(self._post("/open", {"stage": stage}))

    def answers(self, package, stage: str = "label") -> dict[int, list]:
        """The answers ``stage`` stored for a package's items (item seq -> iTAG results), without the items."""
        stored = self._get(f"/packages/{_number(package)}/answers", params={"stage": stage})
        return {int(seq): results for seq, results in stored.items()}

    def items(self, package) -> list[sc.TaskItem]:
        """A package's items with their data, pre-labels (suggestions) and answers so far."""
        return [sc.TaskItem.model_validate(i) for i in self._get(f"/packages/{_number(package)}/items")]

    def submit(
        self,
        item: int,
        answer: Any = None,
        *,
        results: list | None = None,
        client_id: str | None = None,
        stage: str | None = None,
        skip: str | None = None,
    ) -> sc.AnswerAck:
        """Store one item's answer now. ``answer`` is a simple answer (a label, a dict keyed by
        question title...) or ``results`` the iTAG results list; ``skip`` marks the item invalid.
        The ``client_id`` (one is made if not given) makes a retry store nothing twice."""
        body = {
            "item": int(item),
            "client_id": client_id or uuid.uuid4().hex,
            "stage": stage,
            "results": results,
            "answer": answer,
            "skip": skip,
        }
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

    def copy(self, name: str) -> Task:
        return Task(self._lab, sc.Task.model_validate(self._post("/copy", {"name": name})))

    def delete(self) -> None:
        self._lab._ws._delete(self._p())

    # ------------------------------------------------------------ pre-labels

    def prelabel(
        self,
        predict: Callable[[dict], Any] | None = None,
        *,
        source: str = "python",
        predictions: dict[int, Any] | None = None,
        batch: int = 200,
        progress: bool = True,
    ) -> int:
        """Attach suggestions: ``predict(data) -> answer`` is called for each item (or give
        ``predictions`` as {item seq: answer or results}). Shown as suggestions, never answers.
        An answer may carry its confidence: ``{"answer": ..., "score": 0.7, "scores": {class: p}}``."""
        from tqdm.auto import tqdm

        attached = 0
        if predictions is not None:
            pending = [_prelabel(k, v) for k, v in predictions.items()]
            for i in range(0, len(pending), batch):
                attached += self._post("/prelabels", {"source": source, "items": pending[i : i + batch]})["attached"]
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

    def prelabel_from_service(
        self,
        service: str,
        to_answer: Callable[[dict, Any], Any] | None = None,
        *,
        inputs: Callable[[dict], Any] | None = None,
        batch: int = 50,
        threshold: float = 0.5,
        unlabeled_only: bool = True,
        progress: bool = True,
    ) -> int:
        """Suggestions from a served model, with their scores.

        With no ``to_answer``: each item's image bytes (``{"image_bytes": [...]}``, read through the
        media route, so local and s3 items work) or text (``{"text": [...]}``) are sent in batches;
        a classifier's ``label``/``score``/``probabilities`` become a suggested label with its score
        and class probabilities, a detector's ``detection_boxes``/``scores``/``classes`` boxes in
        pixels (those scoring ``threshold`` or more). ``unlabeled_only`` skips answered items.
        With ``to_answer``: ``inputs(data)`` (default: the item's data) goes to predict one item at
        a time and ``to_answer(data, prediction)`` turns the reply into an answer."""
        svc = self._lab._ws.services.get(service)
        if to_answer is not None:
            make_input = inputs or (lambda data: data)
            return self.prelabel(
                lambda data: to_answer(data, svc.predict(make_input(data))),
                source=f"service:{service}",
                batch=batch,
                progress=progress,
            )
        return self._prelabel_served(
            svc, service, batch=batch, threshold=threshold, unlabeled_only=unlabeled_only, progress=progress
        )

    def _prelabel_served(
        self, svc, service: str, *, batch: int, threshold: float, unlabeled_only: bool, progress: bool
    ) -> int:
        from tqdm.auto import tqdm

        from pai_lab.labeling import suggestions

        info = self.refresh()
        questions, contents = info.spec.get("questions", []), info.spec.get("contents", [])
        kinds = {q.get("type") for q in questions}
        media = contents[0]["type"] if contents else "text"
        key = next((q.get("bind") for q in questions if q.get("bind")), None) or (
            contents[0]["key"] if contents else "source"
        )
        if len(questions) != 1 or not kinds & {"single", "multi", "boxes"} or media not in ("image", "text"):
            raise ValueError(
                f"no built-in reading of a model's reply for the {info.template} template; "
                "give to_answer=(data, prediction) -> answer"
            )
        detect = "boxes" in kinds
        multi = "multi" in kinds
        labels = [label.name for label in info.labels]
        class_names = getattr(svc, "class_names", None)
        attached = 0
        with tqdm(total=info.total, desc=f"pre-labels for {self.name} from {service}", disable=not progress) as bar:
            for offset in range(0, info.total, batch):
                items = self.all_items(offset, batch)
                bar.update(len(items))
                todo = [i for i in items if not (unlabeled_only and (i.label is not None or i.skipped))]
                if not todo:
                    continue
                sizes: list[tuple[int, int]] = []
                if media == "image":
                    # a few fetches at once: the server reads local files and s3 objects in parallel
                    with ThreadPoolExecutor(4) as pool:
                        images = list(pool.map(lambda i: self._item_bytes(i.seq, key), todo))
                    sizes = [size for _, size in images]
                    # {"b64": ...} is the TF Serving JSON for bytes
                    x = {"image_bytes": [{"b64": base64.b64encode(body).decode()} for body, _ in images]}
                else:
                    x = {"text": [str(i.data.get(key, "")) for i in todo]}
                reply = svc.predict(x)
                if detect:
                    made = suggestions.detection(reply, sizes, class_names, labels, threshold)
                else:
                    made = suggestions.classification(reply, class_names, labels)
                body = []
                for item, sugg in zip(todo, made):
                    answer = [sugg["answer"]] if multi else sugg["answer"]
                    body.append(
                        {
                            "item": item.seq,
                            "answer": answer,
                            "score": sugg["score"],
                            **({"scores": sugg["scores"]} if sugg.get("scores") else {}),
                        }
                    )
                attached += self._post("/prelabels", {"source": f"service:{service}", "items": body})["attached"]
        return attached

    def _item_bytes(self, seq: int, key: str) -> tuple[bytes, tuple[int, int]]:
        """An item's original bytes and (width, height), as the labeler's media route reads them."""
        media = self.media(seq, key)
        if media.width and media.height:
            return media.content, (media.width, media.height)
        import io

        from PIL import Image

        with Image.open(io.BytesIO(media.content)) as image:
            return media.content, image.size

    # ------------------------------------------------------------ export

    def export(
        self,
        format: str = "itag",
        to: str | os.PathLike | None = None,
        *,
        register_as: str | None = None,
        options: dict | None = None,
        storage_options: dict | None = None,
        server_side: bool = False,
        progress: bool = True,
        overwrite: bool = False,
    ):
        """Export the task. Single-file formats stream to ``to`` from here (or return the text
        when ``to`` is None); folder formats (yolo, tfrecord), s3:// URIs, ``register_as`` and
        ``server_side=True`` are written by the server, which replaces an existing ``to`` only with
        ``overwrite=True``. ``progress`` shows a bar (bytes received for streamed exports; off with
        ``progress=False``)."""
        from tqdm.auto import tqdm

        def bar(**kw):
            return tqdm(desc=f"export {self.name} ({format})", disable=not progress, **kw)

        if to is None:
            if format not in STREAMED:
                raise ValueError(f"{format} exports are folders: give to=<path>")
            resp = self._lab._ws.http.get(
                f"/workspaces/{self._lab._ws.name}{self._p('/export')}", params={"format": format}, stream=True
            )
            chunks = []
            with bar(unit="B", unit_scale=True) as shown:
                for chunk in resp.iter_content(1 << 16):
                    chunks.append(chunk)
                    shown.update(len(chunk))
            return b"".join(chunks).decode("utf-8")
        to = os.fspath(to)
        if format in STREAMED and not (server_side or register_as or "://" in to or options or storage_options):
            resp = self._lab._ws.http.get(
                f"/workspaces/{self._lab._ws.name}{self._p('/export')}",
                params={"format": format},
                stream=True,
                timeout=3600,
            )
            path = Path(to)
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(path.name + f".tmp-{uuid.uuid4().hex[:8]}")
            try:
                with open(tmp, "wb") as f, bar(unit="B", unit_scale=True) as shown:
                    for chunk in resp.iter_content(1 << 16):
                        f.write(chunk)
                        shown.update(len(chunk))
                os.replace(tmp, path)
            finally:
                tmp.unlink(missing_ok=True)
            return sc.ExportResult(format=format, to=to, items=self.info.total, files=[to])
        body = {
            "format": format,
            "to": to if "://" in to else str(Path(to).resolve()),
            "register_as": register_as,
            "options": options or {},
            "storage_options": storage_options or {},
            "overwrite": overwrite,
        }
        with bar(total=self.info.total, unit="item") as shown:  # written by the server in one call
            result = sc.ExportResult.model_validate(self._post("/export", body, timeout=3600))
            shown.update(result.items)
        return result

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
            ("progress", _bars(stages, i.total)),
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


SCORED_KEYS = {"answer", "results", "score", "scores"}


def _prelabel(item: int, value: Any) -> dict:
    if (
        isinstance(value, dict)
        and value.keys() <= SCORED_KEYS
        and value.keys() & {"answer", "results"}
        and (value.keys() & {"score", "scores"})
    ):
        out = _prelabel(item, value.get("results", value.get("answer")))
        out.update({k: value[k] for k in ("score", "scores") if value.get(k) is not None})
        return out
    if (
        isinstance(value, list)
        and value
        and isinstance(value[0], dict)
        and ("questionId" in value[0] or "objects" in value[0])
    ):
        return {"item": int(item), "results": value}
    return {"item": int(item), "answer": value}


def _bars(parts: list[tuple[str, int]], total: int) -> str:
    """Horizontal bars, one per count, out of ``total``."""
    out = []
    for name, n in parts:
        width = round(160 * n / total) if total else 0
        out.append(
            f'<div style="display:flex;align-items:center;gap:6px"><span style="width:70px">{html.escape(name)}'
            f'</span><span style="display:inline-block;width:160px;height:9px;background:#eee">'
            f'<span style="display:block;width:{width}px;height:9px;background:#4a90d9"></span></span>'
            f"<span>{n}/{total}</span></div>"
        )
    return "".join(out)


def _html_table(rows: list[dict]) -> str:
    if not rows:
        return ""
    head = "".join(f'<th style="text-align:left">{html.escape(str(k))}</th>' for k in rows[0])
    body = "".join(
        "<tr>"
        + "".join(f'<td style="text-align:left">{html.escape("-" if v is None else str(v))}</td>' for v in r.values())
        + "</tr>"
        for r in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


class TaskStatsView(sc.TaskStats):
    """``task.stats()``: the statistics, shown in a notebook as bars and tables."""

    def _repr_html_(self) -> str:
        parts = [
            ("labeled", self.labeled),
            ("checked", self.checked),
            ("accepted", self.accepted),
            ("skipped", self.skipped),
        ]
        out = [
            "<div><b>progress</b>",
            _bars(parts, self.total),
            f"<div>packages left: {self.packages_left}; rejected: {self.rejected}</div>",
        ]
        out.append(_html_table([{"state": k, "packages": v} for k, v in self.packages.items() if v]))
        if self.suggested:
            out += [
                "<b>suggestions</b>",
                _bars([("kept", self.suggestions_accepted), ("changed", self.suggestions_changed)], self.suggested),
                f"<div>{self.suggested} items had a suggestion</div>",
            ]
        if self.people:
            out += [
                "<b>people</b>",
                _html_table(
                    [
                        {"user": p.user, "stage": p.stage, "items": p.items, "items/hour": p.items_per_hour}
                        for p in self.people
                    ]
                ),
            ]
        if self.by_labeler:
            agreement = f" (overall {self.agreement:.1%})" if self.agreement is not None else ""
            out += [
                f"<b>agreement with checkers{agreement}</b>",
                _html_table(
                    [
                        {
                            "labeler": a.labeler,
                            "checked": a.checked,
                            "agreed": a.agreed,
                            "accuracy": f"{a.accuracy:.1%}" if a.accuracy is not None else None,
                        }
                        for a in self.by_labeler
                    ]
                ),
            ]
        return "".join(out) + "</div>"


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
