"""Semi-supervised training for the closed-loop replay: the unlabelled pool helps the CNN, only human labels count.

``spread``: label spreading (scikit-learn ``LabelSpreading``, a k-nearest-neighbour graph) over the
embedding the server's orders use (the task's 20 principal components of its 16x16 grey images) gives
every unlabelled pool item a distribution over the digits; the items whose top share reaches a
threshold join the CNN's training set with that digit (weight 1, or their share).

``pretrain``: the CNN's first layers start from an autoencoder's encoder trained on the pool's images
(``autoencoder_weights``) instead of at random.

``fixmatch`` (lite, in two trainings): the model trained on the labels guesses every unlabelled item,
its probabilities averaged over the image and its four one-pixel shifts (the weak view); the items
whose guess reaches 0.95 join with it, each moved by its own random shift of up to 2 pixels (the
strong view), and the CNN trains again from scratch on the labels and those.
"""

from __future__ import annotations

import warnings

import numpy as np

CLASSES = 10


def spread(
    emb: np.ndarray,
    labelled: list[int],
    targets: np.ndarray,
    unlabelled: list[int],
    neighbours: int = 7,
    alpha: float = 0.2,
) -> np.ndarray:
    """Each unlabelled item's spread distribution over the classes (rows of ``CLASSES``; all zero where
    the graph never reached it), from the labelled items' targets over ``emb``'s k-nearest-neighbour graph."""
    from sklearn.semi_supervised import LabelSpreading
    from threadpoolctl import threadpool_limits

    items = list(labelled) + list(unlabelled)
    given = np.concatenate([np.asarray(targets, int), -np.ones(len(unlabelled), int)])
    with warnings.catch_warnings(), threadpool_limits(1):
        warnings.simplefilter("ignore")  # 0/0 rows of items the graph never reached
        model = LabelSpreading(kernel="knn", n_neighbors=neighbours, alpha=alpha, max_iter=100, n_jobs=1)
        model.fit(emb[items], given)
    dist = np.nan_to_num(model.label_distributions_[len(labelled) :])
    out = np.zeros((len(unlabelled), CLASSES))
    out[:, model.classes_] = dist
    return out


def spread_training_set(
    emb: np.ndarray,
    labelled: list[int],
    targets: np.ndarray,
    unlabelled: list[int],
    threshold: float,
    weighted: bool,
    neighbours: int = 7,
) -> tuple[list[int], np.ndarray, np.ndarray]:
    """(unlabelled items that join, their spread digits, their weights): top share >= threshold (and > 0)."""
    if not unlabelled:
        return [], np.zeros(0, int), np.zeros(0)
    dist = spread(emb, labelled, targets, unlabelled, neighbours)
    top, guess = dist.max(1), dist.argmax(1)
    keep = np.flatnonzero((top >= threshold) & (top > 0))  # never an item the graph did not reach
    weights = top[keep] if weighted else np.ones(len(keep))
    return [int(unlabelled[i]) for i in keep], guess[keep], weights


def autoencoder_weights(images: np.ndarray, seed: int, epochs: int = 30) -> list:
    """``pretrain``: an autoencoder over the pool's images whose encoder is the CNN's first layers (the
    3x3 convolution, the pooling, the 64-unit dense layer); returns [convolution weights, dense weights]
    to start the CNN from."""
    import tf_keras as keras

    keras.utils.set_random_seed(seed)
    conv = keras.layers.Conv2D(16, 3, activation="relu", padding="same")
    dense = keras.layers.Dense(64, activation="relu")
    side = images.shape[1]
    model = keras.Sequential(
        [
            keras.layers.Input(shape=images.shape[1:]),
            conv,
            keras.layers.MaxPooling2D(),
            keras.layers.Flatten(),
            dense,
            keras.layers.Dense((side // 2) ** 2 * 16, activation="relu"),
            keras.layers.Reshape((side // 2, side // 2, 16)),
            keras.layers.UpSampling2D(),
            keras.layers.Conv2D(images.shape[-1], 3, activation="sigmoid", padding="same"),
        ]
    )
    model.compile(optimizer=keras.optimizers.Adam(0.003), loss="binary_crossentropy")
    model.fit(images, images, batch_size=32, epochs=epochs, shuffle=True, verbose=0)
    weights = [conv.get_weights(), dense.get_weights()]
    keras.backend.clear_session()
    return weights


WEAK_SHIFTS = ((0, 0), (1, 0), (-1, 0), (0, 1), (0, -1))


def shift(images: np.ndarray, dx: int, dy: int) -> np.ndarray:
    """Images (n, h, w, c) moved dx pixels right and dy down, the edge's value filling in."""
    h, w = images.shape[1:3]
    m = max(abs(dx), abs(dy))
    if not m:
        return images
    padded = np.pad(images, ((0, 0), (m, m), (m, m), (0, 0)), mode="edge")
    return padded[:, m - dy : m - dy + h, m - dx : m - dx + w, :]


def strong_shifts(images: np.ndarray, seed: int, most: int = 2) -> np.ndarray:
    """``fixmatch``'s strong view: each image moved by its own random shift of up to ``most`` pixels."""
    rng = np.random.default_rng(seed)
    moves = rng.integers(-most, most + 1, size=(len(images), 2))
    out = np.empty_like(images)
    for dx, dy in {tuple(m) for m in moves.tolist()}:
        rows = np.flatnonzero((moves[:, 0] == dx) & (moves[:, 1] == dy))
        out[rows] = shift(images[rows], dx, dy)
    return out
