"""Orders that look at the items themselves, not only at the suggestions' scores: a typical first
package before any model exists (TypiClust) and diverse uncertain packages after (cluster-margin).

Plain numpy over an embedding of the items (one row per item; see :mod:`pai_lab.labeling.embeddings`):

- ``typical`` (Hacohen et al., 2022, TypiClust): k-means into labelled + package-size clusters; from
  each of the largest clusters that hold the fewest labelled items, its most typical item (the one
  closest, on average, to its nearest neighbours). Labels that cover the data's dense regions.
- ``cluster_margin`` (Citovsky et al., 2021, in the form the closed-loop replay measured): the
  4 x package-size items of smallest margin (top-1 minus top-2 probability), k-means into
  package-size clusters, each cluster's least-margin item: uncertain items that are not all alike.

Both fill the next package; the items after it keep the plain order (margin, or the items' own).
"""

from __future__ import annotations

import json

import numpy as np

NEIGHBOURS = 20  # TypiClust's k for typicality
WIDEN = 4  # cluster-margin: candidates per package slot
SMALL_CLUSTER = 5  # TypiClust leaves clusters under this size for last
MAX_TYPICALITY = 2_000  # items of a cluster compared pairwise (memory: their square)
MAX_CLUSTERS = 500  # k-means' k, bounded (memory: items x k distances); a larger package's rest follows the plain order


def _squared_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    d = (a * a).sum(1)[:, None] - 2 * a @ b.T + (b * b).sum(1)[None, :]
    return np.maximum(d, 0.0)


def kmeans(points: np.ndarray, k: int, seed: int, iterations: int = 50) -> np.ndarray:
    """Each point's cluster (0..k-1): greedy k-means++ seeding (of 2 + ln k draws per centre, the one
    that lowers the total squared distance most), then Lloyd's iterations; empty clusters stay empty."""
    points = np.asarray(points, dtype=np.float64)
    n = len(points)
    k = max(1, min(k, n))
    trials = 2 + int(np.log(k))
    rng = np.random.default_rng(seed)
    centres = [points[int(rng.integers(n))]]
    nearest = _squared_distances(points, np.array(centres))[:, 0]
    for _ in range(1, k):
        total = nearest.sum()
        draws = rng.choice(n, size=trials, p=nearest / total) if total > 0 else rng.integers(n, size=trials)
        after = np.minimum(nearest[None, :], _squared_distances(points[draws], points))
        best = int(after.sum(1).argmin())
        centres.append(points[draws[best]])
        nearest = after[best]
    centre = np.array(centres)
    labels = np.full(n, -1)
    for _ in range(iterations):
        new = _squared_distances(points, centre).argmin(1)
        if (new == labels).all():
            break
        labels = new
        for c in range(k):
            members = points[labels == c]
            if len(members):
                centre[c] = members.mean(0)
    return labels


def typicality(points: np.ndarray, neighbours: int = NEIGHBOURS) -> np.ndarray:
    """1 / mean distance to the nearest other points (TypiClust's density); higher: more typical."""
    if len(points) < 2:
        return np.ones(len(points))
    d = np.sqrt(_squared_distances(points, points))
    k = min(neighbours, len(points) - 1)
    nearest = np.sort(d, axis=1)[:, 1 : k + 1]
    return 1.0 / (nearest.mean(axis=1) + 1e-8)


def typiclust(embedding: np.ndarray, labelled: np.ndarray, budget: int, seed: int) -> list[int]:
    """Up to ``budget`` rows of ``embedding`` not yet ``labelled`` (a boolean per row), most useful first."""
    taken = np.asarray(labelled, dtype=bool).copy()
    k = min(int(taken.sum()) + budget, len(embedding), MAX_CLUSTERS)
    if k == 0:
        return []
    clusters = kmeans(embedding, k, seed)
    rng = np.random.default_rng(seed)
    sizes = np.bincount(clusters, minlength=k)
    chosen: list[int] = []
    while len(chosen) < budget:
        covered = np.bincount(clusters[taken], minlength=k)
        free = np.bincount(clusters[~taken], minlength=k) > 0
        if not free.any():
            break
        # fewest labelled first, then the largest; clusters under SMALL_CLUSTER items only when nothing else is left
        key = np.where(free, covered * 1e6 - sizes + (sizes < SMALL_CLUSTER) * 1e5, np.inf)
        members = np.flatnonzero(clusters == int(np.argmin(key)))
        if len(members) > MAX_TYPICALITY:  # a huge cluster: the most typical of a sample of its free items
            free_members = members[~taken[members]]
            members = np.sort(rng.choice(free_members, min(MAX_TYPICALITY, len(free_members)), replace=False))
        score = typicality(embedding[members])
        score[taken[members]] = -np.inf
        best = int(members[int(np.argmax(score))])
        taken[best] = True
        chosen.append(best)
    return chosen


def cluster_margin(margins: np.ndarray, embedding: np.ndarray, budget: int, seed: int, widen: int = WIDEN) -> list[int]:
    """Up to ``budget`` rows: the ``widen * budget`` of smallest margin, one per k-means cluster
    (its least-margin row), least margin first."""
    margins = np.asarray(margins, dtype=np.float64)
    candidates = np.argsort(margins, kind="stable")[: widen * budget]
    if len(candidates) <= budget:
        return [int(i) for i in candidates]
    clusters = kmeans(embedding[candidates], budget, seed)
    chosen = []
    for c in range(budget):
        members = candidates[clusters == c]
        if len(members):
            chosen.append(int(members[np.argmin(margins[members])]))
    picked = set(chosen)
    rest = [int(i) for i in candidates if int(i) not in picked]
    chosen += rest[: budget - len(chosen)]  # a cluster left empty: the next least-margin candidates
    return sorted(chosen, key=lambda i: (margins[i], i))


def rank_rows(by: str, rows: list, embedding: dict[int, np.ndarray], labelled: list[int], size: int, seed: int) -> list:
    """The untouched items' ``rows`` (each with ``seq``, ``prelabel_score``, ``prelabel_scores``) in
    the order ``by`` (``typical`` or ``cluster_margin``) gives: the next package of ``size`` first.

    ``embedding``: {seq: row} for the task's items; ``labelled``: the seqs already answered."""
    from pai_lab.labeling.suggestions import uncertainty

    by_seq = sorted(rows, key=lambda r: r.seq)
    size = min(size, MAX_CLUSTERS)
    if by == "typical":
        known = [q for q in labelled if q in embedding]
        points = np.stack([embedding[q] for q in known] + [embedding[r.seq] for r in by_seq])
        mask = np.zeros(len(points), bool)
        mask[: len(known)] = True
        first = [by_seq[i - len(known)] for i in typiclust(points, mask, size, seed)]
        picked = {r.seq for r in first}
        return first + [r for r in by_seq if r.seq not in picked]
    doubt = [
        (uncertainty("margin", r.prelabel_score, json.loads(r.prelabel_scores) if r.prelabel_scores else None), r)
        for r in by_seq
    ]
    scored = [(-u, r) for u, r in doubt if u is not None]  # the margin itself: small, unsure
    scored.sort(key=lambda m: (m[0], m[1].seq))
    unscored = [r for u, r in doubt if u is None]
    if not scored:
        return unscored
    margins = np.array([m for m, _ in scored])
    points = np.stack([embedding[r.seq] for _, r in scored])
    first = [scored[i][1] for i in cluster_margin(margins, points, size, seed)]
    picked = {r.seq for r in first}
    return first + [r for _, r in scored if r.seq not in picked] + unscored
