"""Whale's training-data sharding: a file list split per rank, with its three policies for a list that
does not divide evenly over the ranks.

    files = wh.shard_files(all_files, num_shards=cluster.worker_num, index=cluster.rank)

A list that divides evenly is always split evenly (rank ``i`` gets ``files[i::n]``). Otherwise the policy
decides, by its Whale name:

``"shuffle"`` (the default)
    no split: every rank gets the whole list, in an order of its own (seeded by ``seed`` and the rank).
    The only policy when there are fewer files than ranks; the others fall back to it there.
``"unbalanced"`` (``WHALE_UNBALANCED_IO_SLICING=True``)
    as even as possible: the first ``len(files) % n`` ranks get one file more.
``"drop_last"`` (``WHALE_DROP_LAST_FILES=True``)
    an even split of the first ``len(files) // n * n`` files; the rest is not read.

With both variables set, ``unbalanced`` wins, as in Whale. Ranks with unequal shares see their data end
at different steps: train for a number of steps (``steps_per_epoch`` from the smallest share, or a
repeated dataset), not until the data runs out.
"""

from __future__ import annotations

import os
import random
import warnings
from collections.abc import Sequence

SHUFFLE = "shuffle"
UNBALANCED = "unbalanced"
DROP_LAST = "drop_last"
POLICIES = (SHUFFLE, UNBALANCED, DROP_LAST)
MAX_FILES = 10_000_000

_TRUE = ("1", "true", "yes", "on")


def policy_from_env(environ: dict | None = None) -> str:
    """The policy Whale's variables ask for: unbalanced before drop_last, else shuffle."""
    env = os.environ if environ is None else environ
    if str(env.get("WHALE_UNBALANCED_IO_SLICING", "")).strip().lower() in _TRUE:
        return UNBALANCED
    if str(env.get("WHALE_DROP_LAST_FILES", "")).strip().lower() in _TRUE:
        return DROP_LAST
    return SHUFFLE


def shard_files(
    files: Sequence[str], num_shards: int, index: int, policy: str | None = None, seed: int = 0
) -> list[str]:
    """Rank ``index``'s share of ``files`` over ``num_shards`` ranks under ``policy`` (a name of
    :data:`POLICIES`; ``None``: from Whale's environment variables, see :func:`policy_from_env`)."""
    if isinstance(files, str):
        raise TypeError("files: give a list of file names, not one string")
    files = list(files)
    if len(files) > MAX_FILES:
        raise ValueError(f"files: at most {MAX_FILES} files, got {len(files)}")
    if not isinstance(num_shards, int) or num_shards < 1:
        raise ValueError(f"num_shards: a positive number of ranks, got {num_shards!r}")
    if not isinstance(index, int) or not 0 <= index < num_shards:
        raise ValueError(f"index: this rank's number, 0 to {num_shards - 1}, got {index!r}")
    chosen = policy_from_env() if policy is None else policy
    if chosen not in POLICIES:
        raise ValueError(f"policy: one of {', '.join(POLICIES)} (Whale's names), got {chosen!r}")
    if len(files) % num_shards == 0:
        return files[index::num_shards]
    if len(files) < num_shards and chosen != SHUFFLE:
        warnings.warn(
            f"{len(files)} files for {num_shards} ranks: every rank reads all of them, shuffled "
            f"(Whale's only policy when there are fewer files than ranks; {chosen!r} needs at least one file a rank)",
            stacklevel=2,
        )
        chosen = SHUFFLE
    if chosen == UNBALANCED:
        return files[index::num_shards]
    if chosen == DROP_LAST:
        return files[: len(files) // num_shards * num_shards][index::num_shards]
    order = list(files)
    random.Random(f"{seed}:{index}").shuffle(order)
    return order
