"""Whale's data parallelism on pai_lab's TensorFlow jobs, with Whale's names.

    import pai_lab.whale as wh
    wh.init()                                    # first: the job's ranks from TF_CONFIG
    with wh.cluster():                           # ranks x GPUs as virtual devices
        with wh.replica(num_micro_batch=2) as rep:
            model = build_model(); optimizer = tf_keras.optimizers.SGD(0.1)
    data = rep.distribute(dataset, global_batch=64)
    step = rep.train_step(model, optimizer, lambda m, b: per_example_loss(m, b))
    for batch in data:
        loss = rep.reduce(step(batch), wh.GraphKeys.GLOBAL_MEAN_OBJECTS)

``wh.auto_parallel("replica")`` does the same without the ``with`` blocks. ``wh.stage``, ``wh.pipeline``
and ``wh.split`` raise :class:`WhaleUnsupported`. Files are split per rank by :func:`shard_files` with
Whale's three policies; Whale's communication variables are read by :class:`CommOptions`. TensorFlow
is imported only when a strategy is made.
"""

from pai_lab.whale.cluster import Cluster, cluster, compute_slices
from pai_lab.whale.comm import CommOptions
from pai_lab.whale.metrics import (
    GraphKeys,
    add_to_collection,
    clear_collections,
    get_all_collections,
    get_collection,
    reduce_metric,
)
from pai_lab.whale.scopes import (
    Replica,
    WhaleUnsupported,
    auto_parallel,
    current_scope_as_default,
    init,
    pipeline,
    replica,
    split,
    stage,
    strategy,
)
from pai_lab.whale.sharding import DROP_LAST, POLICIES, SHUFFLE, UNBALANCED, policy_from_env, shard_files
from pai_lab.whale.steps import distribute, make_train_step, reduce_gradients

__all__ = [
    "DROP_LAST",
    "POLICIES",
    "SHUFFLE",
    "UNBALANCED",
    "Cluster",
    "CommOptions",
    "GraphKeys",
    "Replica",
    "WhaleUnsupported",
    "add_to_collection",
    "auto_parallel",
    "clear_collections",
    "cluster",
    "compute_slices",
    "current_scope_as_default",
    "distribute",
    "get_all_collections",
    "get_collection",
    "init",
    "make_train_step",
    "pipeline",
    "policy_from_env",
    "reduce_gradients",
    "reduce_metric",
    "replica",
    "shard_files",
    "split",
    "stage",
    "strategy",
]
