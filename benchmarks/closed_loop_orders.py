"""Orders for the closed-loop replay: which unlabelled items the next round of labels takes.

Each takes the round's model (``probs``: class probabilities of every digit, ``hidden``: its last
hidden layer), a pixel embedding, the labelled and unlabelled pool items (indices into the digits)
and the budget, and returns the items to label next. Plain numpy and scikit-learn.
"""

from __future__ import annotations

import numpy as np


def margin(probs: np.ndarray) -> np.ndarray:
    top = np.sort(probs, axis=1)
    return top[:, -1] - top[:, -2]  # small: unsure


def by_score(score: np.ndarray, unlabelled: list[int], budget: int) -> list[int]:
    """The budget items of lowest score (ties keep the pool's order)."""
    ranked = np.argsort(score[unlabelled], kind="stable")
    return [unlabelled[i] for i in ranked[:budget]]


def typicality(points: np.ndarray, k: int = 20) -> np.ndarray:
    """1 / mean distance to the k nearest other points (TypiClust's density)."""
    if len(points) < 2:
        return np.ones(len(points))
    d = np.sqrt(((points[:, None, :] - points[None, :, :]) ** 2).sum(-1))
    k = min(k, len(points) - 1)
    nearest = np.sort(d, axis=1)[:, 1 : k + 1]
    return 1.0 / (nearest.mean(axis=1) + 1e-8)


def typiclust(emb: np.ndarray, labelled: list[int], unlabelled: list[int], budget: int, seed: int) -> list[int]:
    """TypiClust (Hacohen et al. 2022): k-means into labelled + budget clusters; from each of the largest
    clusters holding the fewest labelled items, its most typical unlabelled item."""
    from sklearn.cluster import KMeans

    pool = np.array(labelled + unlabelled)
    k = min(len(labelled) + budget, len(pool))
    clusters = KMeans(k, n_init=1, random_state=seed).fit_predict(emb[pool])
    is_labelled = np.zeros(len(pool), bool)
    is_labelled[: len(labelled)] = True
    sizes = np.bincount(clusters, minlength=k)
    chosen: list[int] = []
    for _ in range(budget):
        taken = np.bincount(clusters[is_labelled], minlength=k)
        open_ = np.array([(~is_labelled[clusters == c]).any() for c in range(k)])
        if not open_.any():
            break
        # fewest labelled first, then the largest; clusters under 5 items only when nothing else is left
        key = np.where(open_, taken * 1e6 - sizes + (sizes < 5) * 1e5, np.inf)
        c = int(np.argmin(key))
        members = np.flatnonzero(clusters == c)
        typical = typicality(emb[pool[members]])
        typical[is_labelled[members]] = -np.inf
        best = members[int(np.argmax(typical))]
        is_labelled[best] = True
        chosen.append(int(pool[best]))
    return chosen


def probcover(
    emb: np.ndarray,
    labelled: list[int],
    unlabelled: list[int],
    budget: int,
    seed: int,
    probs: np.ndarray,
    groups: int = 10,
) -> list[int]:
    """ProbCover (Yehuda et al. 2022): balls of radius delta (the largest whose balls stay 95% pure
    within k-means clusters, one per class); greedily the item whose ball covers most uncovered items."""
    from sklearn.cluster import KMeans

    pool = np.array(labelled + unlabelled)
    e = emb[pool]
    d = np.sqrt(((e[:, None, :] - e[None, :, :]) ** 2).sum(-1))
    group = KMeans(groups, n_init=3, random_state=seed).fit_predict(e)
    same = group[:, None] == group[None, :]
    delta = float(np.quantile(d, 0.001))
    for q in np.quantile(d[d > 0], [0.002, 0.005, 0.01, 0.02, 0.03, 0.05, 0.08]):
        pure = (~((d <= q) & ~same)).all(axis=1).mean()
        if pure < 0.95:
            break
        delta = float(q)
    ball = d <= delta
    covered = ball[: len(labelled)].any(axis=0)
    free = np.zeros(len(pool), bool)
    free[len(labelled) :] = True
    chosen: list[int] = []
    for _ in range(budget):
        gain = (ball & ~covered[None, :]).sum(axis=1)
        gain[~free] = -1
        best = int(np.argmax(gain))
        if gain[best] <= 0:  # all covered: the rest by margin
            rest = [int(pool[i]) for i in np.flatnonzero(free)]
            chosen += by_score(margin(probs), rest, budget - len(chosen))
            break
        chosen.append(int(pool[best]))
        free[best] = False
        covered |= ball[best]
    return chosen


def badge(probs: np.ndarray, hidden: np.ndarray, unlabelled: list[int], budget: int, seed: int) -> list[int]:
    """BADGE (Ash et al. 2020): k-means++ seeding over the last layer's gradient embeddings
    (probabilities minus the predicted class's one-hot, times the hidden layer)."""
    p = probs[unlabelled]
    g = p.copy()
    g[np.arange(len(p)), p.argmax(1)] -= 1
    emb = (g[:, :, None] * hidden[unlabelled][:, None, :]).reshape(len(p), -1)
    rng = np.random.default_rng(seed)
    first = int(np.argmax((emb**2).sum(1)))
    chosen = [first]
    nearest = ((emb - emb[first]) ** 2).sum(1)
    while len(chosen) < min(budget, len(unlabelled)):
        weights = nearest / nearest.sum() if nearest.sum() > 0 else None
        nxt = int(rng.choice(len(emb), p=weights))
        if nxt in chosen:
            continue
        chosen.append(nxt)
        nearest = np.minimum(nearest, ((emb - emb[nxt]) ** 2).sum(1))
    return [unlabelled[i] for i in chosen]


def cluster_margin(
    probs: np.ndarray, emb: np.ndarray, unlabelled: list[int], budget: int, seed: int, widen: int = 4
) -> list[int]:
    """The widen * budget least-margin items, k-means into budget clusters, each cluster's least-margin item."""
    from sklearn.cluster import KMeans

    m = margin(probs)
    candidates = by_score(m, unlabelled, widen * budget)
    if len(candidates) <= budget:
        return candidates
    groups = KMeans(budget, n_init=1, random_state=seed).fit_predict(emb[candidates])
    chosen = []
    for c in range(budget):
        members = [candidates[i] for i in np.flatnonzero(groups == c)]
        if members:
            chosen.append(min(members, key=lambda i: m[i]))
    rest = [i for i in candidates if i not in set(chosen)]
    return chosen + rest[: budget - len(chosen)]


def density_margin(
    probs: np.ndarray, emb: np.ndarray, unlabelled: list[int], budget: int, beta: float = 1.0
) -> list[int]:
    """Information density (Settles & Craven 2008): (1 - margin) times typicality ** beta."""
    dens = typicality(emb[unlabelled])
    dens = dens / dens.max()
    score = -(1 - margin(probs)[unlabelled]) * dens**beta
    ranked = np.argsort(score, kind="stable")
    return [unlabelled[i] for i in ranked[:budget]]


def pick(
    order: str,
    model: dict,
    pca: np.ndarray,
    labelled: list[int],
    unlabelled: list[int],
    budget: int,
    seed: int,
    round_: int,
) -> list[int]:
    """The next round's items under ``order``: ``name``, or ``name:SPACE`` for an order that needs an
    embedding: ``pca`` (the pixels'), ``penult`` (the model's last hidden layer), ``probs`` (its probabilities)."""
    name, _, space = order.partition(":")
    emb = model["hidden"] if space == "penult" else model["probs"] if space == "probs" else pca
    probs = model["probs"]
    if name == "random":
        ranked = np.random.default_rng(seed).permutation(len(unlabelled))
        return [unlabelled[i] for i in ranked[:budget]]
    if name == "least_confidence":
        return by_score(probs.max(1), unlabelled, budget)
    if name == "margin":
        return by_score(margin(probs), unlabelled, budget)
    if name == "entropy":
        return by_score((probs * np.log(probs + 1e-12)).sum(1), unlabelled, budget)
    if name == "typiclust":
        return typiclust(emb, labelled, unlabelled, budget, seed)
    if name == "probcover":
        return probcover(emb, labelled, unlabelled, budget, seed, probs)
    if name == "badge":
        return badge(probs, model["hidden"], unlabelled, budget, seed)
    if name == "server_cluster_margin":  # pai_lab.labeling.ordering's, task.order("cluster_margin")
        from pai_lab.labeling.ordering import cluster_margin as server_cluster_margin

        m = margin(probs)[unlabelled]
        return [unlabelled[i] for i in server_cluster_margin(m, emb[unlabelled], budget, seed)]
    if name.startswith("cluster_margin"):
        widen = int(name.removeprefix("cluster_margin") or 4)
        return cluster_margin(probs, emb, unlabelled, budget, seed, widen)
    if name.startswith("density_margin"):
        return density_margin(probs, emb, unlabelled, budget)
    for prefix, first in (("typi", typiclust), ("cover", None)):
        if name.startswith(prefix) and name.endswith("_margin"):
            rounds = int(name[len(prefix) : -len("_margin")])
            if round_ > rounds:
                return by_score(margin(probs), unlabelled, budget)
            if first is None:
                return probcover(emb, labelled, unlabelled, budget, seed, probs)
            return first(emb, labelled, unlabelled, budget, seed)
    raise ValueError(f"unknown order {order!r}")
