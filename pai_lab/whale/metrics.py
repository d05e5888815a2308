"""Whale's ``GraphKeys``: values a step returns, aggregated over the replicas.

Whale reports one replica's value unless a tensor is put in a collection. Here a train step's result
(what ``strategy.run`` returns, one value a replica) is reduced by :func:`reduce_metric`, or kept, reduced,
by :func:`add_to_collection` and read back with :func:`get_collection`::

    loss = step(batch)                                           # one loss a replica
    wh.reduce_metric(loss, wh.GraphKeys.GLOBAL_MEAN_OBJECTS)     # the mean over every replica of every rank
    wh.add_to_collection(loss, wh.GraphKeys.GLOBAL_MEAN_OBJECTS) # the same, kept: get_collection(key)

``GLOBAL_*`` reduce over every replica of every rank (a collective: call it on every rank at the same
point); ``LOCAL_*`` reduce within each of this rank's replicas along the first axis (e.g. the losses of
its micro-batches, as ``train_step`` returns them with ``per_micro_batch=True``).
"""

from __future__ import annotations

from typing import Any

from pai_lab.whale import _state

MAX_KEPT = 10_000


class GraphKeys:
    GLOBAL_CONCAT_OBJECTS = "global_concat_objects"
    LOCAL_CONCAT_OBJECTS = "local_concat_objects"
    GLOBAL_MEAN_OBJECTS = "global_mean_objects"
    LOCAL_MEAN_OBJECTS = "local_mean_objects"
    GLOBAL_SUM_OBJECTS = "global_sum_objects"
    LOCAL_SUM_OBJECTS = "local_sum_objects"

    ALL = (
        GLOBAL_CONCAT_OBJECTS,
        LOCAL_CONCAT_OBJECTS,
        GLOBAL_MEAN_OBJECTS,
        LOCAL_MEAN_OBJECTS,
        GLOBAL_SUM_OBJECTS,
        LOCAL_SUM_OBJECTS,
    )


_collections: dict[str, list[Any]] = {}


def _strategy(strategy):
    import tensorflow as tf

    return strategy or _state.strategy or tf.distribute.get_strategy()


def reduce_metric(value, key: str = GraphKeys.GLOBAL_MEAN_OBJECTS, strategy=None):
    """``value`` (one tensor a replica, or a plain tensor) aggregated as ``key`` says; a tensor (LOCAL_* with
    several replicas in this process: a list, one a replica)."""
    import tensorflow as tf

    if key not in GraphKeys.ALL:
        raise ValueError(f"key: one of wh.GraphKeys ({', '.join(GraphKeys.ALL)}), got {key!r}")
    strategy = _strategy(strategy)
    scope, _, how = key.partition("_")
    how = how.split("_")[0]
    if scope == "global":
        if how == "concat":
            return strategy.gather(value, axis=0)
        op = tf.distribute.ReduceOp.MEAN if how == "mean" else tf.distribute.ReduceOp.SUM
        return strategy.reduce(op, value, axis=None)
    local = list(strategy.experimental_local_results(value))
    if how == "concat":
        reduced = [tf.convert_to_tensor(v) for v in local]
    elif how == "mean":
        reduced = [tf.reduce_mean(v, axis=0) for v in local]
    else:
        reduced = [tf.reduce_sum(v, axis=0) for v in local]
    return reduced[0] if len(reduced) == 1 else reduced


def add_to_collection(value, graph_key: str, strategy=None) -> None:
    """Aggregate ``value`` as ``graph_key`` says and keep the result (the last 10,000 a key)."""
    result = reduce_metric(value, graph_key, strategy)
    kept = _collections.setdefault(graph_key, [])
    kept.append(result)
    del kept[:-MAX_KEPT]


def get_collection(graph_key: str) -> list:
    """The aggregated values kept under ``graph_key``, oldest first."""
    if graph_key not in GraphKeys.ALL:
        raise ValueError(f"graph_key: one of wh.GraphKeys ({', '.join(GraphKeys.ALL)}), got {graph_key!r}")
    return list(_collections.get(graph_key, []))


def get_all_collections() -> list:
    """Every kept value of every non-empty collection."""
    return [v for key in GraphKeys.ALL for v in _collections.get(key, [])]


def clear_collections() -> None:
    _collections.clear()
