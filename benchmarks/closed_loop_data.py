"""The closed loop's data and its anchor: the digits, their seeded splits, the first package
(the pool's first items, or the typical ones `task.order("typical")` picks, computed here with the
platform's own code), and the scikit-learn recipe users know (LogisticRegression on the 64 raw
pixels, least-confidence sampling)."""

from __future__ import annotations

import warnings

import numpy as np
from threadpoolctl import threadpool_limits


def digits() -> tuple[np.ndarray, np.ndarray]:
    """The 1,797 digits as (64 raw pixels 0-16, digit), in the order the sample's files are numbered."""
    try:
        from pai_lab.datasets.samples import digits_arrays
    except ImportError:  # a pai_lab from before the digits shipped with it
        from sklearn.datasets import load_digits

        data = load_digits()
        return data.data, data.target
    images, targets = digits_arrays()
    return images.reshape(len(images), -1), targets


def split(
    targets: np.ndarray, seed: int, test_fraction: float, pool_limit: int | None, test_limit: int | None
) -> tuple[np.ndarray, np.ndarray]:
    """(pool in the order its first packages are cut, test), stratified by digit, the same for every learner."""
    from sklearn.model_selection import train_test_split

    pool, test = train_test_split(np.arange(len(targets)), test_size=test_fraction, stratify=targets, random_state=seed)
    pool = np.random.default_rng(seed).permutation(pool)
    return pool[:pool_limit], np.sort(test)[:test_limit]


def labels_to_target(curve: list[tuple[int, float]], target: float) -> tuple[int, bool]:
    """Labels at the first round whose test accuracy reached the target (reached=False: the last round's)."""
    for labels, accuracy in curve:
        if accuracy >= target:
            return labels, True
    return (curve[-1][0] if curve else 0), False


def task_embedding(x: np.ndarray, pool: np.ndarray) -> np.ndarray:
    """The embedding a server computes for a task over ``pool`` (pai_lab.labeling.embeddings: each
    sample PNG grey at 16x16, 20 principal components over the task's items), as rows of all the digits."""
    from PIL import Image

    from pai_lab.labeling.embeddings import embed, image_vector

    def png(pixels: np.ndarray):  # the sample's file (pai_lab.datasets.samples), decoded
        img = Image.fromarray((255 - pixels.reshape(8, 8) * 255 / 16).astype("uint8"), mode="L")
        return img.resize((32, 32), Image.Resampling.NEAREST)

    rows = embed([image_vector(png(x[i])) for i in pool])
    out = np.zeros((len(x), rows.shape[1]), np.float32)
    out[pool] = rows
    return out


def typical_first(x: np.ndarray, pool: np.ndarray, size: int, seed: int) -> list[int]:
    """The first package `task.order("typical", seed=seed)` makes of a task over ``pool`` (in its order)."""
    from pai_lab.labeling.ordering import typiclust

    picked = typiclust(task_embedding(x, pool)[pool], np.zeros(len(pool), bool), size, seed)
    return [int(pool[i]) for i in picked]


class Anchor:
    """The notebook recipe users know: LogisticRegression on 64 raw pixels, least-confidence sampling."""

    name = "anchor  "

    def __init__(self, x: np.ndarray, y: np.ndarray, args):
        self.x, self.y, self.args = x, y, args

    def begin(self, strategy: str, seed: int) -> None:
        self.pool, self.test = split(self.y, seed, self.args.test_fraction, self.args.pool, self.args.test)
        self.rng = np.random.default_rng(seed + 1000)
        self.order = list(self.pool)  # unlabelled items, the next package first
        if self.args.first_package == "typical":  # the platform's loop starts from the same package
            first = typical_first(self.x, self.pool, self.args.round_size, seed)
            self.order = first + [i for i in self.order if i not in set(first)]
        self.labelled: list[int] = []

    def label_round(self) -> int | None:
        if not self.order:
            return None
        take, self.order = self.order[: self.args.round_size], self.order[self.args.round_size :]
        self.labelled += take
        return len(self.labelled)

    def train_and_score(self) -> float:
        from sklearn.linear_model import LogisticRegression

        # One BLAS thread: on a busy 2-core machine, two threads made each tiny fit 20x slower.
        with warnings.catch_warnings(), threadpool_limits(1):
            warnings.simplefilter("ignore")  # lbfgs may stop at max_iter on tiny rounds
            self.model = LogisticRegression(max_iter=2000).fit(self.x[self.labelled], self.y[self.labelled])
        return float(self.model.score(self.x[self.test], self.y[self.test]))

    def rank(self, strategy: str) -> None:
        if not self.order:
            return
        if strategy == "uncertainty":
            with threadpool_limits(1):
                confidence = self.model.predict_proba(self.x[self.order]).max(axis=1)
            ranked = np.argsort(confidence, kind="stable")
        else:
            ranked = self.rng.permutation(len(self.order))
        self.order = [self.order[i] for i in ranked]

    def round_note(self) -> str:
        return ""

    def end(self) -> None:
        pass
