"""Label inline in the notebook: one widget family for every labeling template.

    >>> task = ws.labeling.get("cats")
    >>> task.label()        # labeler view: claims the next package, one key per item
    >>> task.check()        # checker view: see the labels, modify, pass or reject with a comment
    >>> task.accept()       # acceptor view

The front end (``static/labeler.js``, an anywidget module) draws the item and takes keys and
mouse input; it fetches media straight from the server's ``.../items/{seq}/media`` route and
keeps the next items decoded. Every answer is stored on the server at once with a client-made id,
so a retry never stores it twice: straight from the page when it holds the package under the
same login (the kernel is off the path from one item to the next), else through this kernel
object. The page shows "Saving" until the server has acknowledged it. Nothing lives only in
widget state: opening the task again (after a reload or a kernel restart) resumes at the first
unanswered item with every answer in place.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import anywidget
import traitlets

from pai_lab.errors import PaiError

log = logging.getLogger("pai_lab.widgets.labeling")
STATIC = Path(__file__).parent / "static"
STAGES = ("label", "check", "accept")
STAGE_COUNT = {"label": "labeled", "check": "checked", "accept": "accepted"}
STAGE_FIELD = {"label": "label", "check": "check", "accept": "verify"}


class Labeler(anywidget.AnyWidget):
    """The labeling widget for one task and one stage (``label``, ``check`` or ``accept``)."""

    _esm = STATIC / "labeler.js"
    _css = STATIC / "labeler.css"

    task = traitlets.Dict().tag(sync=True)
    stage = traitlets.Unicode("label").tag(sync=True)
    items = traitlets.List().tag(sync=True)
    package = traitlets.Dict(allow_none=True, default_value=None).tag(sync=True)
    progress = traitlets.Dict().tag(sync=True)
    notice = traitlets.Unicode("").tag(sync=True)
    api_path = traitlets.Unicode("").tag(sync=True)
    media_via_kernel = traitlets.Bool(False).tag(sync=True)

    def __init__(self, task, stage: str = "label", *, media_via_kernel: bool = False, **kwargs: Any):
        if stage not in STAGES:
            raise ValueError(f"stage must be one of {', '.join(STAGES)}, got {stage!r}")
        super().__init__(stage=stage, media_via_kernel=media_via_kernel, **kwargs)
        self._task = task
        self._items_by_seq: dict[int, dict] = {}
        self._opened: dict[int, set[int]] = {}  # package number -> the item seqs this labeler showed
        self._views_seen = 0
        ws = task._lab._ws
        self.api_path = f"pai-lab/api/v1/workspaces/{ws.name}/labeling/tasks/{task.id}"
        self.on_msg(self._on_msg)
        self.open_package()

    # ------------------------------------------------------------ loading

    def open_package(self, claim: bool = True) -> None:
        """Fetch the task, take the package held in this stage (or the next from the pool) and its items."""
        info = self._task.refresh()
        self.task = {"id": info.id, "name": info.name, "template": info.template, "flow": info.flow,
                     "labels": [label.model_dump() for label in info.labels], "multi": info.multi,
                     "spec": info.spec}
        self.progress = {"total": info.total, "labeled": info.labeled, "checked": info.checked,
                         "accepted": info.accepted}
        package = self._task.claim(self.stage) if claim else None
        if package is None:
            self.package = None
            self.items = []
            self._items_by_seq = {}
            self.notice = "" if info.total else "This task has no items."
            return
        items = [i.model_dump(mode="json") for i in self._task.items(package)]
        if self.stage == "check":  # only the sampled items are checked; the rest keep their labels
            items = [i for i in items if i["sampled"] and not i["skipped"]]
        elif self.stage == "accept":
            items = [i for i in items if not i["skipped"]]
        self._items_by_seq = {i["seq"]: i for i in items}
        self._opened.setdefault(package.number, set()).update(self._items_by_seq)
        self.package = package.model_dump(mode="json")
        self.notice = (f"Package {package.number} came back from review: {package.comment}"
                       if package.rework and package.comment and self.stage == "label" else "")
        self.items = items

    @property
    def answers(self) -> dict[int, Any]:
        """The answers for the widget's stage of every package this labeler showed, submitted ones
        included, as stored on the server now (item seq -> iTAG results): the page stores answers
        straight there, so this asks the server."""
        field = STAGE_FIELD[self.stage]
        out: dict[int, Any] = {}
        for number, shown in sorted(self._opened.items()):
            out.update({item.seq: value for item in self._task.items(number)
                        if item.seq in shown and (value := getattr(item, field)) is not None})
        return dict(sorted(out.items()))

    # ------------------------------------------------------------ messages from the page

    def _on_msg(self, _widget, content: dict, _buffers) -> None:
        kind = content.get("type")
        try:
            if kind == "answer":
                self._answer(content)
            elif kind == "media":
                self._media(content)
            elif kind == "hello":
                # a page shown again (reload) re-reads the package; the first view has it already
                self._views_seen += 1
                if self._views_seen > 1:
                    self.open_package(claim=True)
            elif kind == "submit":
                self._submit()
            elif kind == "review":
                self._review(content.get("verdict"), content.get("comment", ""))
        except PaiError as exc:
            self.send({"type": "error", "error": exc.message})
        except Exception as exc:  # keep the widget alive; the page shows the problem
            log.exception("labeling widget message %s failed", kind)
            self.send({"type": "error", "error": f"{type(exc).__name__}: {exc}"})

    def _answer(self, msg: dict) -> None:
        seq, client_id = int(msg["seq"]), msg.get("client_id")
        try:
            self._task.submit(seq, results=msg.get("results"), skip=msg.get("skip"), client_id=client_id,
                              stage=self.stage)
        except PaiError as exc:
            self.send({"type": "ack", "client_id": client_id, "seq": seq, "ok": False, "error": exc.message})
            return
        item = self._items_by_seq.get(seq)
        field = STAGE_FIELD[self.stage]
        if item is not None:
            first = item.get(field) is None and not item.get("skipped")
            if msg.get("skip"):
                item["skipped"] = msg["skip"]
            else:
                item[field] = msg.get("results")
                item["skipped"] = None if self.stage == "label" else item.get("skipped")
            if first:
                key = STAGE_COUNT[self.stage]
                self.progress = {**self.progress, key: self.progress.get(key, 0) + 1}
        self.send({"type": "ack", "client_id": client_id, "seq": seq, "ok": True, "progress": self.progress})

    def _media(self, msg: dict) -> None:
        """Media through the kernel, for pages that cannot reach the server themselves."""
        ws = self._task._lab._ws
        params = {"key": msg.get("key", "source"), "w": int(msg.get("w") or 0), "h": int(msg.get("h") or 0)}
        try:
            resp = ws.http.get(f"/workspaces/{ws.name}/labeling/tasks/{self._task.id}/items/{int(msg['seq'])}/media",
                               params=params, stream=True)
        except PaiError as exc:
            self.send({"type": "media", "req": msg.get("req"), "ok": False, "error": exc.message})
            return
        self.send({"type": "media", "req": msg.get("req"), "ok": True,
                   "mime": resp.headers.get("Content-Type", "application/octet-stream"),
                   "width": int(resp.headers.get("X-Original-Width") or 0) or None,
                   "height": int(resp.headers.get("X-Original-Height") or 0) or None}, [resp.content])

    def _submit(self) -> None:
        if not self.package:
            return
        done = self._task.submit_package(self.package["number"])
        self.open_package()
        if not self.package:
            self.notice = f"Package {done.number} submitted. No more packages to label."

    def _review(self, verdict: str, comment: str) -> None:
        if not self.package:
            return
        number = self.package["number"]
        if verdict == "pass":
            self._task.passes(number, comment)
            said = f"Package {number} passed."
        elif verdict == "reject":
            self._task.reject(number, comment)
            said = f"Package {number} sent back to its labeler."
        else:
            raise ValueError(f"unknown verdict {verdict!r}")
        self.open_package()
        self.notice = said + ("" if self.package else " Nothing else is waiting.")

    def __repr__(self) -> str:
        return f"<Labeler {self.task.get('name')} ({self.stage}), package {(self.package or {}).get('number')}>"


def label(task, **kwargs) -> Labeler:
    return Labeler(task, "label", **kwargs)


def check(task, **kwargs) -> Labeler:
    return Labeler(task, "check", **kwargs)


def accept(task, **kwargs) -> Labeler:
    return Labeler(task, "accept", **kwargs)
