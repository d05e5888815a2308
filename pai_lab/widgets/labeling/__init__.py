"""Label inline in the notebook: one widget family for every labeling template.

    >>> task = ws.labeling.get("cats")
    >>> task.label()        # labeler view: claims the next package, one key per item
    >>> task.check()        # checker view: see the labels, modify, pass or reject with a comment
    >>> task.accept()       # acceptor view

The front end (``static/labeler.js``, an anywidget module bundled from ``ui/src``) draws the item
and takes keys and mouse input; it fetches media straight from the server's
``.../items/{seq}/media`` route and keeps the next items decoded. The page calls this object with
commands (anywidget's command protocol: a request id, one handler per command, one reply). Every answer
is stored on the server at once with a client-made id,
so a retry never stores it twice: straight from the page when it holds the package under the
same login (the kernel is off the path from one item to the next), else through this kernel
object. The page shows "Saving" until the server has acknowledged it. Nothing lives only in
widget state: opening the task again (after a reload or a kernel restart) resumes at the first
unanswered item with every answer in place.
"""

from __future__ import annotations

import functools
import logging
from pathlib import Path
from typing import Any

import anywidget
import traitlets
from anywidget.experimental import command as anywidget_command

from pai_lab.errors import BadInput, PaiError
from pai_lab.labeling.flow import STAGES

log = logging.getLogger("pai_lab.widgets.labeling")
STATIC = Path(__file__).parent / "static"


def command(handler):
    """A command the page invokes: the reply is ``{"ok": True, ...}``, or ``{"ok": False, "error"}``
    when it is refused, so the page always hears back and shows the problem."""

    @functools.wraps(handler)
    def run(self, msg, buffers):
        try:
            reply, out = handler(self, msg if isinstance(msg, dict) else {}, buffers)
        except PaiError as exc:
            return {"ok": False, "error": exc.message}, []
        except Exception as exc:  # keep the widget alive; the page shows the problem
            log.exception("labeling widget command %s failed", handler.__name__)
            return {"ok": False, "error": f"{type(exc).__name__}: {exc}"}, []
        return {"ok": True, **reply}, out

    return anywidget_command(run)


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
        if not STATIC.joinpath("labeler.js").exists():  # built from ui/ by the package build
            raise RuntimeError(
                "the labeler's front end is not built: reinstall pai_lab from its checkout "
                "(pip install -e .), or run `jlpm install && jlpm build` in pai_lab/widgets/labeling/ui"
            )
        super().__init__(stage=stage, media_via_kernel=media_via_kernel, **kwargs)
        self._task = task
        self._opened: dict[int, set[int]] = {}  # package number -> the item seqs this labeler showed
        self._views_seen = 0
        self.api_path = task.api_path
        self.open_package()

    # ------------------------------------------------------------ loading

    def open_package(self) -> None:
        """Open the package held in this stage (or the next from the pool) with its items: one request,
        whose items carry what the page shows (the answer each opens with, done or not in the stage)."""
        opened = self._task.open(self.stage)
        info = opened.task
        self.task = {
            "id": info.id,
            "name": info.name,
            "template": info.template,
            "flow": info.flow,
            "labels": [label.model_dump() for label in info.labels],
            "multi": info.multi,
            "spec": info.spec,
            "stage": opened.stage.model_dump(),
        }
        self.progress = opened.progress.model_dump()
        package = opened.package
        if package is None:
            self.package, self.items = None, []
            self.notice = "" if info.total else "This task has no items."
            return
        items = [i.model_dump(mode="json") for i in opened.items]
        self._opened.setdefault(package.number, set()).update(i["seq"] for i in items)
        self.package = package.model_dump(mode="json")
        self.notice = (
            f"Package {package.number} came back from review: {package.comment}"
            if package.rework and package.comment and self.stage == "label"
            else ""
        )
        self.items = items

    @property
    def answers(self) -> dict[int, Any]:
        """The answers for the widget's stage of every package this labeler showed, submitted ones
        included, as stored on the server now (item seq -> iTAG results): the page stores answers
        straight there, so this asks the server (the answers only, not the packages again)."""
        out: dict[int, Any] = {}
        for number, shown in sorted(self._opened.items()):
            stored = self._task.answers(number, self.stage)
            out.update({seq: value for seq, value in stored.items() if seq in shown})
        return dict(sorted(out.items()))

    # ------------------------------------------------------------ commands from the page

    @command
    def hello(self, _msg: dict, _buffers) -> tuple[dict, list]:
        # a page shown again (reload) re-reads the package; the first view has it already
        self._views_seen += 1
        if self._views_seen > 1:
            self.open_package()
        return {}, []

    @command
    def answer(self, msg: dict, _buffers) -> tuple[dict, list]:
        """Store one item's answer (a simple answer, or ``skip``); the server builds its results and
        acknowledges with the task's counters."""
        seq, client_id, skip = int(msg["seq"]), msg.get("client_id"), msg.get("skip")
        ack = self._task.submit(
            seq,
            None if skip else msg.get("answer"),
            results=msg.get("results"),
            skip=skip,
            client_id=client_id,
            stage=self.stage,
        )
        if ack.progress is not None:
            self.progress = ack.progress.model_dump()
        return {"seq": seq, "client_id": client_id, "progress": self.progress}, []

    @command
    def media(self, msg: dict, _buffers) -> tuple[dict, list]:
        """Media through the kernel, for pages that cannot reach the server themselves."""
        media = self._task.media(
            int(msg["seq"]), msg.get("key", "source"), width=int(msg.get("w") or 0), height=int(msg.get("h") or 0)
        )
        return {"mime": media.mime, "width": media.width, "height": media.height}, [media.content]

    @command
    def submit(self, _msg: dict, _buffers) -> tuple[dict, list]:
        if self.package:
            done = self._task.submit_package(self.package["number"])
            self.open_package()
            if not self.package:
                self.notice = f"Package {done.number} submitted. No more packages to label."
        return {}, []

    @command
    def review(self, msg: dict, _buffers) -> tuple[dict, list]:
        if not self.package:
            return {}, []
        number, verdict, comment = self.package["number"], msg.get("verdict"), msg.get("comment", "")
        if verdict == "pass":
            self._task.passes(number, comment)
            said = f"Package {number} passed."
        elif verdict == "reject":
            self._task.reject(number, comment)
            said = f"Package {number} sent back to its labeler."
        else:
            raise BadInput(f"verdict must be pass or reject, got {verdict!r}", "verdict")
        self.open_package()
        self.notice = said + ("" if self.package else " Nothing else is waiting.")
        return {}, []

    def __repr__(self) -> str:
        return f"<Labeler {self.task.get('name')} ({self.stage}), package {(self.package or {}).get('number')}>"


def label(task, **kwargs) -> Labeler:
    return Labeler(task, "label", **kwargs)


def check(task, **kwargs) -> Labeler:
    return Labeler(task, "check", **kwargs)


def accept(task, **kwargs) -> Labeler:
    return Labeler(task, "accept", **kwargs)
