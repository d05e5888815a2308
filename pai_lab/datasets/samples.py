"""Public sample datasets, built offline and deterministically on first use.

- ``digits``: the UCI 8x8 handwritten digits (the copy scikit-learn bundles, shipped here as
  ``data/digits.csv.gz``) as 32x32 grayscale PNGs, labelled 0-9;
- ``reviews``: short product reviews labelled positive / negative (text classification);
- ``shapes``: 64x64 pictures of squares and circles with their boxes (object detection).

Labels are written as an iTAG export of a fixed task (``label-<SAMPLE_TASK_ID>``), the same
shape a labeling export has, so readers and training treat samples like labelled data. Manifests
list items shuffled with a fixed seed, so a labeling task's first package mixes the classes.
"""

from __future__ import annotations

import gzip
import os
import random
import shutil
import tempfile
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

from pai_lab.errors import BadInput

SAMPLE_TASK_ID = "1000000000000000001"
LABEL_KEY = f"label-{SAMPLE_TASK_ID}"
DIGITS_CSV = Path(__file__).parent / "data" / "digits.csv.gz"  # 1,797 rows: 64 pixels (0-16), then the digit
_LOCK = threading.Lock()


def _shuffled(lines: list[dict], seed: int) -> Iterator[dict]:
    random.Random(seed).shuffle(lines)
    return iter(lines)


def classification(label: str) -> dict:
    return {"results": [{"questionId": "1", "data": label, "markTitle": "单选", "type": "survey/value"}]}


def detection(boxes: list[tuple[str, float, float, float, float]], width: int, height: int, seed: str) -> dict:
    shapes = []
    for i, (label, x0, y0, x1, y1) in enumerate(boxes):
        shapes.append(
            {
                "id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{seed}/{i}")),
                "type": "image/polygon",
                "value": [[x0, y0], [x1, y0], [x1, y1], [x0, y1]],
                "labels": {"单选": label},
            }
        )
    return {
        "results": [
            {
                "questionId": "1",
                "data": shapes,
                "rotation": 0,
                "markTitle": "目标检测标签配置",
                "width": width,
                "type": "image",
                "height": height,
            }
        ]
    }


def digits_arrays() -> tuple:
    """The shipped digits as (images float64 [1797, 8, 8] in 0-16, targets int [1797]), as scikit-learn's
    ``load_digits()`` gives them, without scikit-learn."""
    import numpy as np

    with gzip.open(DIGITS_CSV, "rt") as f:
        table = np.loadtxt(f, delimiter=",")
    return table[:, :-1].reshape(-1, 8, 8), table[:, -1].astype(int)


def _digits(folder: Path) -> None:
    from PIL import Image

    images, targets = digits_arrays()
    for i, (pixels, target) in enumerate(zip(images, targets)):
        sub = folder / str(int(target))
        sub.mkdir(exist_ok=True)
        img = Image.fromarray((255 - pixels * 255 / 16).astype("uint8"), mode="L")
        img = img.resize((32, 32), Image.Resampling.NEAREST)
        img.save(sub / f"{i:04d}.png", optimize=True)


def _digits_lines(folder: Path) -> Iterator[dict]:
    return _shuffled(
        [
            {"data": {"source": str(path)}, LABEL_KEY: classification(path.parent.name)}
            for path in sorted(folder.glob("*/*.png"))
        ],
        seed=13,
    )


_GOOD = ["great", "excellent", "lovely", "reliable", "fantastic", "solid", "delightful", "superb"]
_BAD = ["terrible", "broken", "disappointing", "flimsy", "awful", "useless", "faulty", "poor"]
_THINGS = ["battery", "screen", "keyboard", "camera", "speaker", "charger", "case", "headphones", "lamp", "kettle"]
_GOOD_TAIL = ["would buy again", "works as described", "five stars", "my family loves it", "worth every cent"]
_BAD_TAIL = ["returned it", "stopped working after a week", "do not buy", "waste of money", "one star"]


def _reviews_lines(_folder: Path) -> Iterator[dict]:
    rng = random.Random(7)
    lines = []
    for i in range(200):
        positive = i % 2 == 0
        words = _GOOD if positive else _BAD
        tail = _GOOD_TAIL if positive else _BAD_TAIL
        text = f"The {rng.choice(_THINGS)} is {rng.choice(words)}, {rng.choice(tail)}."
        lines.append({"data": {"source": text}, LABEL_KEY: classification("positive" if positive else "negative")})
    return _shuffled(lines, seed=17)


def _shapes(folder: Path) -> None:
    import json

    from PIL import Image, ImageDraw

    rng = random.Random(11)
    boxes = {}
    for i in range(60):
        img = Image.new("RGB", (64, 64), (240, 240, 235))
        draw = ImageDraw.Draw(img)
        found = []
        for _ in range(rng.randint(1, 3)):
            size = rng.randint(10, 22)
            x0, y0 = rng.randint(0, 63 - size), rng.randint(0, 63 - size)
            kind = rng.choice(["square", "circle"])
            color = tuple(rng.randint(20, 200) for _ in range(3))
            (draw.rectangle if kind == "square" else draw.ellipse)([x0, y0, x0 + size, y0 + size], fill=color)
            found.append((kind, float(x0), float(y0), float(x0 + size), float(y0 + size)))
        name = f"{i:03d}.png"
        img.save(folder / name)
        boxes[name] = found
    (folder / "boxes.json").write_text(json.dumps(boxes))


def _shapes_lines(folder: Path) -> Iterator[dict]:
    import json

    boxes = json.loads((folder / "boxes.json").read_text())
    return _shuffled(
        [
            {
                "data": {"source": str(folder / name)},
                LABEL_KEY: detection([tuple(b) for b in boxes[name]], 64, 64, name),
            }
            for name in sorted(boxes)
        ],
        seed=19,
    )


# name -> (data type, description, writer of the files or None, manifest lines)
SAMPLES: dict[str, tuple[str, str, Callable[[Path], None] | None, Callable[[Path], Iterator[dict]]]] = {
    "digits": ("image", "1,797 handwritten digits (UCI), 32x32 PNG, labels 0-9", _digits, _digits_lines),
    "reviews": ("text", "200 short product reviews labelled positive / negative", None, _reviews_lines),
    "shapes": ("image", "60 pictures of squares and circles with their boxes (detection)", _shapes, _shapes_lines),
}
SAMPLE_COUNTS = {"digits": 1797, "reviews": 200, "shapes": 60}


def sample_names() -> list[str]:
    return list(SAMPLES)


def materialize(name: str, state_dir: Path) -> tuple[str, str, Iterator[dict], Path | None]:
    """Build the sample's files under ``<state_dir>/samples/<name>`` once; return (type, description,
    lines, the folder of its files or None for a sample made of texts only)."""
    if name not in SAMPLES:
        raise BadInput(f"no sample dataset {name!r}; samples are: {', '.join(SAMPLES)}", "source")
    data_type, description, write, lines = SAMPLES[name]
    folder = state_dir / "samples" / name
    if write is not None and not folder.is_dir():
        with _LOCK:
            if not folder.is_dir():
                folder.parent.mkdir(parents=True, exist_ok=True)
                tmp = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=folder.parent))
                try:
                    write(tmp)
                    os.replace(tmp, folder)  # whole or not at all, also across processes
                except BaseException:
                    shutil.rmtree(tmp, ignore_errors=True)
                    if not folder.is_dir():
                        raise
    return data_type, description, lines(folder), folder if write is not None else None
