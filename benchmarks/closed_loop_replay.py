"""The closed loop's arithmetic in one process: which order of labelling reaches 95% with the fewest labels.

closed_loop.py runs the loop through the platform (a labeling task, a 2-rank job per round, a
service, pre-labels), 27 minutes for 3 seeds. This replays its arithmetic in seconds per round, to
try orders: the same splits (``split``, ``digits``), the same first package, the images decoded as
the job reads them (the sample's 32x32 PNG, resized to 16x16, scaled to [0, 1]), the same CNN
(digits_classifier.py: tf_keras, Adam 0.003, batch 32, every 10th label held out for validation),
trained from scratch each round with the seed, rounds of 50 until the test accuracy reaches the target.

Orders (``--orders``, comma-separated; ``random`` is always run, it is every ratio's denominator):

    least_confidence, margin, entropy         the served model's probabilities alone
    typiclust, probcover                      typical / covering items of an embedding
    badge                                     k-means++ seeding on gradient embeddings
    cluster_margin                            the least-margin items, one per k-means cluster
    typi1_margin, typi2_margin, ...           typiclust for the first N ordered rounds, then margin
    cover1_margin, cover2_margin              the same with probcover
    server_cluster_margin                     the platform's task.order("cluster_margin")
                                              (pai_lab.labeling.ordering over the server's embedding)

An order that needs an embedding takes ``:pca`` (PCA of the pixels, 20 components), ``:penult``
(the trained model's last hidden layer) or ``:probs`` (its class probabilities, all a
server has of a suggestion), e.g. ``typiclust:penult``; default ``pca``. ``--first-package
server-typical`` starts every order from the package the platform's ``task.order("typical")`` makes.
``--spread 0.9``, ``--fixmatch 0.95`` or ``--pretrain 30``: the pool's unlabelled items train the CNN too
(label spreading, FixMatch-lite, an autoencoder's start; closed_loop_semi.py); only human labels count.

    python benchmarks/closed_loop_replay.py --orders margin,typi1_margin --seeds 16
    python benchmarks/closed_loop_replay.py --smoke      # two seeds, two rounds, 3 epochs

Every figure line carries the machine and its load average. Last line per order:
``ORDER: U / R labels (ratio X), seeds A-B; blocks of 8 seeds: ...``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
import warnings
from pathlib import Path

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script, too
from benchmarks.closed_loop_data import digits, labels_to_target, split, task_embedding, typical_first
from benchmarks.closed_loop_orders import pick, typiclust
from benchmarks.closed_loop_semi import WEAK_SHIFTS, autoencoder_weights, shift, spread_training_set, strong_shifts

CLASSES = 10


def machine() -> str:
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    return f"{platform.node()}, {os.cpu_count()} cores, load average {load}"


def images_as_the_job_reads(x: np.ndarray) -> np.ndarray:
    """64 pixels (0-16) -> the sample's PNG (inverted, 32x32 nearest) -> 16x16 bilinear in [0, 1]."""
    import tensorflow as tf

    png = (255 - x.reshape(-1, 8, 8) * 255 / 16).astype("uint8")
    big = np.repeat(np.repeat(png, 4, axis=1), 4, axis=2)[..., None].astype("float32")
    return (tf.image.resize(big, (16, 16)).numpy() / 255.0).astype("float32")


class Replay:
    """Train-and-score with a memo: the same labelled set and seed give the same model (round one is shared).

    ``holdout``: every holdout-th label (items sorted) is kept for validation, as the job does (0: train
    on all). ``pseudo``: after training on the labels, up to that many unlabelled pool items per class
    whose top probability reaches ``threshold`` join as pseudo-labels (the model's guess) and the model
    is trained again from scratch; that second model is scored and orders the next round. ``spread``: the
    unlabelled pool items whose label-spreading share (closed_loop_semi.py, over ``embedding``, the
    server's) reaches that threshold train with the labels (0: none); ``spread_weighted``: weighted by it.
    ``pretrain``: the CNN's first layers start from an autoencoder trained that many epochs on the pool."""

    def __init__(self, images: np.ndarray, y: np.ndarray, epochs: int, holdout: int = 10, pseudo: int = 0):
        self.images, self.y, self.epochs, self.holdout, self.pseudo = images, y, epochs, holdout, pseudo
        self.threshold = 0.99
        self.spread, self.spread_weighted, self.embedding, self.embedding_seed = 0.0, False, np.zeros(0), -1
        self.fixmatch = 0.0  # the weak view's confidence for a pseudo-label (0: off)
        self.pretrain, self.start = 0, []  # autoencoder epochs (0: none); its encoder's weights, this seed's
        self.memo: dict = {}
        self.notes: list[str] = []  # the current run's pseudo-labels per round: right / taken

    def train(self, labelled: list[int], seed: int, test: np.ndarray, unlabelled: list[int] | None = None) -> dict:
        key = (seed, tuple(sorted(labelled)))
        if key in self.memo:
            return self.memo[key]
        ordered = sorted(labelled)
        h = self.holdout
        train = [k for n, k in enumerate(ordered) if not h or n % h != h - 1]
        if self.spread and unlabelled:
            extra, guesses, weights = spread_training_set(
                self.embedding, ordered, self.y[ordered], unlabelled, self.spread, self.spread_weighted
            )
            weight = np.concatenate([np.ones(len(train)), weights])
            out = self.fit(train + extra, np.concatenate([self.y[train], guesses]), seed, test, weight)
            out |= {"pseudo": len(extra), "pseudo_right": int((guesses == self.y[extra]).sum())}
            self.memo[key] = out
            return out
        out = self.fit(train, self.y[train], seed, test)
        if self.fixmatch and unlabelled:
            pool = np.array(unlabelled)
            sure = pool[out["weak"][pool].max(1) >= self.fixmatch]
            guesses = out["weak"][sure].argmax(1)
            inputs = np.concatenate([self.images[train], strong_shifts(self.images[sure], seed)])
            targets = np.concatenate([self.y[train], guesses])
            out = self.fit(train, targets, seed, test, inputs=inputs) | {
                "pseudo": len(sure),
                "pseudo_right": int((guesses == self.y[sure]).sum()),
            }
        if self.pseudo and unlabelled:
            extra = self.confident(out["probs"], unlabelled)
            guesses = out["probs"][extra].argmax(1)
            out = self.fit(train + extra, np.concatenate([self.y[train], guesses]), seed, test) | {
                "pseudo": len(extra),
                "pseudo_right": int((guesses == self.y[extra]).sum()),
            }
        self.memo[key] = out
        return out

    def confident(self, probs: np.ndarray, unlabelled: list[int]) -> list[int]:
        """Up to ``pseudo`` unlabelled items per predicted class, surest first, top probability >= threshold."""
        pool = np.array(unlabelled)
        top, guess = probs[pool].max(1), probs[pool].argmax(1)
        extra: list[int] = []
        for c in range(CLASSES):
            sure = np.flatnonzero((guess == c) & (top >= self.threshold))
            sure = sure[np.argsort(-top[sure], kind="stable")][: self.pseudo]
            extra += [int(pool[i]) for i in sorted(sure)]
        return extra

    def fit(
        self,
        train: list[int],
        targets: np.ndarray,
        seed: int,
        test: np.ndarray,
        weight: np.ndarray | None = None,
        inputs: np.ndarray | None = None,
    ) -> dict:
        import tf_keras as keras

        keras.utils.set_random_seed(seed)
        model = keras.Sequential(
            [
                keras.layers.Input(shape=(16, 16, 1)),
                keras.layers.Conv2D(16, 3, activation="relu", padding="same"),
                keras.layers.MaxPooling2D(),
                keras.layers.Flatten(),
                keras.layers.Dense(64, activation="relu"),
                keras.layers.Dense(CLASSES, activation="softmax"),
            ]
        )
        if self.start:  # Conv2D and Dense(64): layers 0 and 3
            model.layers[0].set_weights(self.start[0])
            model.layers[3].set_weights(self.start[1])
        model.compile(optimizer=keras.optimizers.Adam(0.003), loss="sparse_categorical_crossentropy")
        model.fit(
            self.images[train] if inputs is None else inputs,
            targets,
            sample_weight=weight,
            batch_size=32,
            epochs=self.epochs,
            shuffle=True,
            verbose=0,
        )
        both = keras.Model(model.inputs, [model.layers[-2].output, model.output])
        hidden, probs = both.predict(self.images, batch_size=512, verbose=0)
        accuracy = float((probs[test].argmax(1) == self.y[test]).mean())
        out = {"accuracy": accuracy, "probs": probs, "hidden": hidden}
        if self.fixmatch and inputs is None:  # the weak view's guesses, for the second training
            views = [probs] + [model.predict(shift(self.images, dx, dy), 512, verbose=0) for dx, dy in WEAK_SHIFTS[1:]]
            out["weak"] = np.mean(views, axis=0)
        keras.backend.clear_session()
        return out


def first_package(
    y: np.ndarray, pca: np.ndarray, seed: int, args, order: str = ""
) -> tuple[list[int], list[int], np.ndarray]:
    """(the first package, the rest of the pool in its order, the test split): the same for every order,
    except random's with ``--random-first-package seeded`` (the pool's first items, random in every round)."""
    pool, test = split(y, seed, args.test_fraction, None, None)
    labelled = [int(i) for i in pool[: args.round_size]]
    how = "seeded" if order == "random" and args.random_first_package == "seeded" else args.first_package
    if how == "typical":  # TypiClust over the pixels, for every order (random too)
        labelled = typiclust(pca, [], [int(i) for i in pool], args.round_size, seed)
    if how == "server-typical":  # task.order("typical", seed=seed), as closed_loop.py asks it
        labelled = typical_first(args.x, pool, args.round_size, seed)
    first = set(labelled)
    return labelled, [int(i) for i in pool if i not in first], test


def anchor(x: np.ndarray, y: np.ndarray, pca: np.ndarray, seed: int, strategy: str, args) -> int:
    """closed_loop.py's anchor (LogisticRegression on the raw pixels, least confidence or random) from
    this replay's first package: labels to the target."""
    from sklearn.linear_model import LogisticRegression
    from threadpoolctl import threadpool_limits

    labelled, order, test = first_package(y, pca, seed, args, "random" if strategy == "random" else "")
    rng = np.random.default_rng(seed + 1000)
    while True:
        with warnings.catch_warnings(), threadpool_limits(1):
            warnings.simplefilter("ignore")
            model = LogisticRegression(max_iter=2000).fit(x[labelled], y[labelled])
            if model.score(x[test], y[test]) >= args.target or len(labelled) >= args.max_labels or not order:
                return len(labelled)
            if strategy == "uncertainty":
                ranked = np.argsort(model.predict_proba(x[order]).max(axis=1), kind="stable")
            else:
                ranked = rng.permutation(len(order))
        order = [order[i] for i in ranked]
        labelled, order = labelled + order[: args.round_size], order[args.round_size :]


def run(replay: Replay, pca: np.ndarray, order: str, seed: int, args) -> list[tuple[int, float]]:
    labelled, unlabelled, test = first_package(replay.y, pca, seed, args, order)
    if (
        order.startswith("server_") or replay.spread or replay.pretrain
    ):  # the server's embedding of the task (its pool: every order's)
        if replay.embedding_seed != seed:
            replay.embedding = task_embedding(args.x, np.array(labelled + unlabelled))
            replay.embedding_seed = seed
            if replay.pretrain:
                replay.start = autoencoder_weights(replay.images[labelled + unlabelled], seed, replay.pretrain)
        if order.startswith("server_"):
            pca = replay.embedding
    curve: list[tuple[int, float]] = []
    rounds = 0
    while True:
        model = replay.train(labelled, seed, test, unlabelled)
        curve.append((len(labelled), model["accuracy"]))
        if "pseudo" in model:
            replay.notes.append(f"{model['pseudo_right']}/{model['pseudo']}")
        if model["accuracy"] >= args.target or len(labelled) >= args.max_labels or not unlabelled:
            return curve
        rounds += 1
        chosen = pick(order, model, pca, labelled, unlabelled, args.round_size, seed * 1000 + rounds, rounds)
        taken = set(chosen)
        labelled += chosen
        unlabelled = [i for i in unlabelled if i not in taken]


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", default="margin", help="comma-separated orders to compare with random")
    parser.add_argument("--seeds", type=int, default=16)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--round-size", type=int, default=50)
    parser.add_argument("--target", type=float, default=0.95)
    parser.add_argument("--max-labels", type=int, default=1000)
    parser.add_argument("--test-fraction", type=float, default=0.3)
    parser.add_argument(
        "--first-package",
        choices=["seeded", "typical", "server-typical"],
        default="seeded",
        help="seeded: the pool's first 50 (closed_loop.py's); typical: TypiClust over the pixels, for every order; "
        'server-typical: the platform\'s task.order("typical")',
    )
    parser.add_argument(
        "--anchor", action="store_true", help="also closed_loop.py's anchor from the same first packages"
    )
    parser.add_argument(
        "--random-first-package",
        choices=["same", "seeded"],
        default="same",
        help="same: random starts from --first-package too; seeded: random starts from the pool's first items "
        "(random in every round; the anchor then runs from seeded first packages as well)",
    )
    parser.add_argument(
        "--holdout", type=int, default=10, help="every N-th label is held out for validation, as the job does; 0: none"
    )
    parser.add_argument(
        "--pseudo", type=int, default=0, help="pseudo-labels per class (top probability >= 0.99) and a second training"
    )
    parser.add_argument(
        "--spread",
        type=float,
        default=0.0,
        help="label spreading over the pool: unlabelled items whose share reaches this train too (0: off)",
    )
    parser.add_argument("--spread-weighted", action="store_true", help="spread items weighted by their share")
    parser.add_argument("--fixmatch", type=float, default=0.0, help="FixMatch-lite's confidence, e.g. 0.95 (0: off)")
    parser.add_argument(
        "--pretrain", type=int, default=0, help="epochs of an autoencoder on the pool that starts the CNN (0: none)"
    )
    parser.add_argument("--threads", type=int, default=2, help="TensorFlow's threads")
    parser.add_argument(
        "--log", default=None, help="JSON-lines file of (order, seed) results: appended to, and read back to resume"
    )
    parser.add_argument("--smoke", action="store_true", help="two seeds, at most two rounds, 3 epochs")
    args = parser.parse_args(argv)
    if args.smoke:
        args.seeds, args.epochs, args.max_labels = 2, 3, 2 * args.round_size

    import tensorflow as tf
    from sklearn.decomposition import PCA

    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    x, y = digits()
    args.x = x
    images = images_as_the_job_reads(x)
    pca = PCA(n_components=20, random_state=0).fit_transform(images.reshape(len(images), -1))
    replay = Replay(images, y, args.epochs, args.holdout, args.pseudo)
    replay.spread, replay.spread_weighted, replay.pretrain = args.spread, args.spread_weighted, args.pretrain
    replay.fixmatch = args.fixmatch
    orders = ["random"] + [o for o in args.orders.split(",") if o and o != "random"]
    seeds = list(range(args.first_seed, args.first_seed + args.seeds))
    print(
        f"replay: {len(y)} digits, rounds of {args.round_size}, {args.epochs} epochs, seeds {seeds[0]}-{seeds[-1]}, "
        f"holdout {args.holdout}, pseudo-labels {args.pseudo}, random's first package {args.random_first_package}, "
        f"spread {args.spread}{' weighted' if args.spread_weighted else ''}, autoencoder epochs {args.pretrain}, "
        f"fixmatch {args.fixmatch}"
    )
    results: dict = {o: {} for o in orders}
    done = {}  # (order, seed) -> curve: what an earlier run with the same settings left in the log
    if args.log and Path(args.log).exists():
        for line in Path(args.log).read_text().splitlines():
            row = json.loads(line)
            if row.get("settings") == settings(args):
                done[(row["order"], row["seed"])] = [tuple(point) for point in row["curve"]]
    for seed in seeds:
        for order in orders:
            if (order, seed) in done:
                results[order][seed] = labels_to_target(done[(order, seed)], args.target)[0]
                continue
            started = time.perf_counter()
            replay.notes = []
            curve = run(replay, pca, order, seed, args)
            labels, reached = labels_to_target(curve, args.target)
            results[order][seed] = labels
            print(
                f"  {order:<20} seed {seed:>2}: {labels}{'' if reached else '+'} labels "
                f"({', '.join(f'{n}:{a:.3f}' for n, a in curve)}) {time.perf_counter() - started:.0f} s"
                f"{' pseudo-labels right ' + ', '.join(replay.notes) if replay.notes else ''} [{machine()}]",
                flush=True,
            )
            if args.log:
                with open(args.log, "a") as f:
                    f.write(
                        json.dumps({"order": order, "seed": seed, "settings": settings(args), "curve": curve}) + "\n"
                    )
        replay.memo.clear()
    summary = summarize(results, seeds)
    if args.anchor:
        starts = [("", args)]
        if args.random_first_package == "seeded" and args.first_package != "seeded":  # modAL's way, too
            starts.append(
                (", both from seeded first packages", argparse.Namespace(**{**vars(args), "first_package": "seeded"}))
            )
        for note, how in reversed(starts):
            u, r = ([anchor(x, y, pca, s, strategy, how) for s in seeds] for strategy in ("uncertainty", "random"))
            summary["lines"].insert(
                0,
                f"anchor (LogisticRegression, least confidence{note}): {statistics.fmean(u):.1f} / "
                f"{statistics.fmean(r):.1f} labels (ratio {statistics.fmean(u) / statistics.fmean(r):.3f}), "
                f"seeds {seeds[0]}-{seeds[-1]}",
            )
    for line in summary["lines"]:
        print(line + f" [{machine()}]")
    return summary


def settings(args) -> dict:
    keys = ("epochs", "round_size", "target", "max_labels", "test_fraction", "first_package")
    out = {k: getattr(args, k) for k in keys}
    # later settings only where they differ from what earlier logs ran with (those logs still resume)
    later = (
        ("holdout", 10),
        ("pseudo", 0),
        ("random_first_package", "same"),
        ("spread", 0.0),
        ("spread_weighted", False),
        ("pretrain", 0),
        ("fixmatch", 0.0),
    )
    for k, default in later:
        if getattr(args, k) != default:
            out[k] = getattr(args, k)
    return out


def summarize(results: dict, seeds: list[int]) -> dict:
    random_mean = statistics.fmean(results["random"][s] for s in seeds)
    lines, ratios = [], {}
    for order, per_seed in results.items():
        mean = statistics.fmean(per_seed[s] for s in seeds)
        blocks = []
        for start in range(0, len(seeds), 8):
            block = seeds[start : start + 8]
            if len(block) == 8:
                a = statistics.fmean(per_seed[s] for s in block)
                b = statistics.fmean(results["random"][s] for s in block)
                blocks.append(f"{a / b:.2f}")
        ratios[order] = mean / random_mean
        lines.append(
            f"{order}: {mean:.1f} / {random_mean:.1f} labels (ratio {mean / random_mean:.3f}), "
            f"seeds {seeds[0]}-{seeds[-1]}; blocks of 8 seeds: {', '.join(blocks) or '-'}"
        )
    return {"ratios": ratios, "lines": lines}


if __name__ == "__main__":
    main()
