"""Suggestions (pre-labels) that pay: how uncertain a scored suggestion is, whether an answer kept
the suggestion it was shown, and a served model's outputs turned into iTAG suggestions.

Plain functions over plain values; the service stores and orders, the client calls the model.
"""

from __future__ import annotations

import json
import math
import uuid
from collections.abc import Sequence
from typing import Any

from pai_lab.errors import BadInput

BY_CONTENT = ("typical", "cluster_margin")  # orders that also compare the items (pai_lab.labeling.ordering)
ORDERS = ("least_confidence", "margin", "entropy", "random", *BY_CONTENT)
PREDICTION, CHANGED, MANUAL = "prediction", "prediction-changed", "manual"


# ---------------------------------------------------------------------------- uncertainty


def uncertainty(by: str, score: float | None, scores: dict[str, float] | None) -> float | None:
    """How unsure the model was (higher: label it sooner); None when the suggestion has no score.

    From the class probabilities when there are any; from the one ``score`` otherwise (the rest of
    the probability is then taken as one other class, the most a single rival could have)."""
    probs = sorted((p for p in (scores or {}).values() if p is not None), reverse=True)
    if not probs:
        if score is None:
            return None
        probs = [score, 1 - score]
    if by == "least_confidence":
        return 1 - probs[0]
    if by == "margin":
        return -(probs[0] - (probs[1] if len(probs) > 1 else 0.0))
    if by == "entropy":
        total = sum(probs) or 1.0
        return -sum(p / total * math.log(p / total) for p in probs if p > 0)
    raise BadInput(f"unknown order {by!r}; orders are: {', '.join(ORDERS)}", "by")


def check_scores(score: float | None, scores: dict[str, float] | None, where: str) -> None:
    for name, p in (scores or {}).items():
        if not isinstance(p, (int, float)) or isinstance(p, bool) or not 0 <= p <= 1 or p != p:
            raise BadInput(f"{where}.scores[{name!r}] must be a probability between 0 and 1, got {p!r}", "scores")
    if score is not None and not 0 <= score <= 1:
        raise BadInput(f"{where}.score must be between 0 and 1, got {score!r}", "score")


# ---------------------------------------------------------------------------- origin of an answer


def _comparable(value: Any) -> Any:
    # ids and colours are the widget's own; coordinates are stored to 2 decimals by the labeler
    if isinstance(value, dict):
        return {k: _comparable(v) for k, v in value.items() if k not in ("id", "color")}
    if isinstance(value, list):
        return [_comparable(v) for v in value]
    if isinstance(value, float):
        return round(value, 2)
    return value


def origin(answer: str | None, suggestion: str | None) -> str | None:
    """``prediction`` when the answer equals the suggestion it was shown, ``prediction-changed``
    when it differs, ``manual`` when there was none (Label Studio's names); None for no answer."""
    if answer is None:
        return None
    if suggestion is None:
        return MANUAL
    if answer == suggestion:
        return PREDICTION
    same = _comparable(json.loads(answer)) == _comparable(json.loads(suggestion))
    return PREDICTION if same else CHANGED


# ---------------------------------------------------------------------------- from a served model


def _rows(value: Any) -> list:
    return value.tolist() if hasattr(value, "tolist") else list(value)


def classification(outputs: Any, class_names: Sequence[str] | None, labels: Sequence[str]) -> list[dict]:
    """A classifier's batch reply -> one {"answer", "score", "scores"} per input.

    ``outputs`` is the service's reply: {"label", "score", "probabilities"} (the gateway adds label
    and score when the model carries its class names) or the probabilities alone ([N, C])."""
    if isinstance(outputs, dict):
        probs = outputs.get("probabilities")
        names, tops = outputs.get("label"), outputs.get("score")
    else:
        probs, names, tops = outputs, None, None
    probs = _rows(probs) if probs is not None else None
    classes = list(class_names) if class_names else list(labels)
    out = []
    count = len(probs) if probs is not None else len(_rows(names))
    for i in range(count):
        row = [float(p) for p in probs[i]] if probs is not None else None
        if row is not None and len(row) != len(classes):
            raise BadInput(
                f"the model gives {len(row)} probabilities but there are {len(classes)} class names; "
                "save the class list with the model (class_names.json)",
                "service",
            )
        scores = dict(zip(classes, row)) if row is not None else None
        if names is not None:
            name = _rows(names)[i]
            name = name.decode() if isinstance(name, bytes) else str(name)
        elif row is not None:
            name = classes[max(range(len(row)), key=row.__getitem__)]
        else:  # neither names nor probabilities: nothing to suggest from
            raise BadInput("the service's reply has neither labels nor probabilities", "service")
        if scores is not None and not class_names and max(scores.items(), key=lambda kv: kv[1])[0] != name:
            scores = None  # the model's class order is not the task's labels' and is not known: keep no guess
        top = float(_rows(tops)[i]) if tops is not None else (scores or {}).get(name)
        if name not in labels:
            raise BadInput(
                f"the model answers {name!r}, which is not a label of this task (labels: {', '.join(labels)})",
                "service",
            )
        out.append({"answer": name, "score": top, "scores": scores})
    return out


def detection(
    outputs: dict,
    sizes: Sequence[tuple[int, int]],
    class_names: Sequence[str] | None,
    labels: Sequence[str],
    threshold: float = 0.5,
) -> list[dict]:
    """A detector's batch reply (TF Object Detection names: ``detection_boxes`` [N,K,4] as ymin, xmin,
    ymax, xmax normalised, ``detection_scores`` [N,K], ``detection_classes`` [N,K] indices into the
    class names) -> one {"answer" (boxes in pixels), "score"} per image of size (width, height).

    Boxes scoring below ``threshold`` are left out; the suggestion's score is its least sure box's
    (how much there is to check), or, with no box kept, one minus the best score left out."""
    boxes, scores = _rows(outputs["detection_boxes"]), _rows(outputs["detection_scores"])
    classes = _rows(outputs["detection_classes"])
    names = list(class_names) if class_names else list(labels)
    out = []
    for i, (width, height) in enumerate(sizes):
        shapes, kept, dropped = [], [], [0.0]
        for box, score, cls in zip(boxes[i], scores[i], classes[i]):
            score = float(score)
            if score < threshold:
                dropped.append(score)
                continue
            index = int(cls)
            if not 0 <= index < len(names):
                raise BadInput(f"the model gives class {index}, past its {len(names)} class names", "service")
            if names[index] not in labels:
                raise BadInput(f"the model answers {names[index]!r}, which is not a label of this task", "service")
            ymin, xmin, ymax, xmax = (min(max(float(v), 0.0), 1.0) for v in box)
            shapes.append(
                {
                    "id": str(uuid.uuid4()),
                    "label": names[index],
                    "box": [
                        round(xmin * width, 2),
                        round(ymin * height, 2),
                        round(xmax * width, 2),
                        round(ymax * height, 2),
                    ],
                }
            )
            kept.append(score)
        top = min(kept) if kept else 1 - max(dropped)
        out.append({"answer": {"width": width, "height": height, "shapes": shapes}, "score": top})
    return out
