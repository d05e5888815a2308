"""Suggestions for a labeling task's items: from a Python function, from given predictions, or from a
served model (``task.prelabel_from_service``), each with its score when it has one.

Mixed into :class:`pai_lab.client.labeling.Task`, whose ``_post``, ``refresh``, ``all_items`` and ``media``
it uses.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any


class TaskPrelabels:
    """Attach suggestions to a task's items (a :class:`~pai_lab.client.labeling.Task` does these)."""

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
