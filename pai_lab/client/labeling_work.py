"""A labeling task's package side, what the labeler widgets call: an item's media, claiming and opening a
package, storing answers, and moving a package on (submit, pass, reject, release, reassign).

Mixed into :class:`pai_lab.client.labeling.Task`, whose ``_get``/``_post`` plumbing it uses.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from pai_lab.labeling import schemas as sc


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


class TaskWork:
    """Claim, open and answer a task's packages (a :class:`~pai_lab.client.labeling.Task` does these)."""

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
