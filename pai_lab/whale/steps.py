"""Data-parallel input and training steps under a tf.distribute strategy: the global batch cut into
one contiguous part a replica, gradients summed over the micro-batches of a replica (Whale's
``num_micro_batch``) and then over the replicas (with the communication knobs of :mod:`.comm`)."""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from typing import Any

from pai_lab.whale._state import warn_once
from pai_lab.whale.comm import CommOptions

MAX_MICRO_BATCHES = 1024


def distribute(strategy, dataset, global_batch: int):
    """A distributed dataset of ``dataset`` (the same elements, in the same order, on every rank) in
    batches of ``global_batch``: replica ``r`` of ``N`` gets rows ``r*B/N`` to ``(r+1)*B/N`` of each global
    batch, so N replicas see what one process with batch ``global_batch`` sees. A last partial batch is
    dropped."""
    import tensorflow as tf

    replicas = strategy.num_replicas_in_sync
    if not isinstance(global_batch, int) or global_batch < 1 or global_batch % replicas:
        raise ValueError(f"global_batch: a positive multiple of the {replicas} replica(s), got {global_batch!r}")
    per = global_batch // replicas

    def per_pipeline(context):
        local = replicas // context.num_input_pipelines
        first = context.input_pipeline_id * local

        def cut(t):
            part = t[first * per : (first + local) * per]
            return tf.reshape(part, tf.concat([[local, per], tf.shape(part)[1:]], 0))

        def mine(*element):
            out = tf.nest.map_structure(cut, element)
            return out if len(element) > 1 else out[0]

        return dataset.batch(global_batch, drop_remainder=True).map(mine).unbatch()

    options = tf.distribute.InputOptions(experimental_fetch_to_device=True)
    return strategy.distribute_datasets_from_function(per_pipeline, options)


def _aggregates_itself(optimizer) -> str | None:
    """The apply_gradients argument that turns the optimizer's own all-reduce off (tf_keras), or None
    (Keras 3 optimizers always all-reduce in a replica context)."""
    try:
        params = inspect.signature(optimizer.apply_gradients).parameters
    except (TypeError, ValueError):
        return None
    for name in ("skip_gradients_aggregation", "experimental_aggregate_gradients"):
        if name in params:
            return name
    return None


def reduce_gradients(grads: list, comm: CommOptions, gradient_bytes: int | None = None) -> list:
    """Sum ``grads`` over every replica (inside a replica context), the way ``comm`` says."""
    import tensorflow as tf

    context = tf.distribute.get_replica_context()
    if context is None:
        raise RuntimeError("reduce_gradients runs inside strategy.run (a replica context)")
    if comm.sparse_as_dense:
        grads = [tf.convert_to_tensor(g) if isinstance(g, tf.IndexedSlices) else g for g in grads]
    options = comm.tf_options(gradient_bytes)
    if not comm.dense_fp16:
        return list(context.all_reduce(tf.distribute.ReduceOp.SUM, grads, options=options))
    scale = comm.fp16_scale or 1.0
    dense = [i for i, g in enumerate(grads) if not isinstance(g, tf.IndexedSlices)]
    sparse = [i for i, g in enumerate(grads) if isinstance(g, tf.IndexedSlices)]
    sent = [tf.cast(grads[i] * scale, tf.float16) for i in dense]
    out: list[Any] = list(grads)
    if sent:
        for i, r in zip(dense, context.all_reduce(tf.distribute.ReduceOp.SUM, sent, options=options)):
            out[i] = tf.cast(r, grads[i].dtype) / scale
    if sparse:
        for i, r in zip(sparse, context.all_reduce(tf.distribute.ReduceOp.SUM, [grads[i] for i in sparse], options)):
            out[i] = r
    return out


def make_train_step(
    strategy,
    model,
    optimizer,
    loss_fn: Callable,
    *,
    num_micro_batch: int = 1,
    comm: CommOptions | None = None,
    per_micro_batch: bool = False,
) -> Callable:
    """A ``tf.function`` taking one element of :func:`distribute` and training one step on it.

    ``loss_fn(model, batch)`` returns the per-example losses of ``batch``. Each replica's batch is cut
    into ``num_micro_batch`` equal micro-batches run one after another, their gradients added up
    (Whale's "Grads Acc"), then summed over the replicas and applied once: the losses are scaled by the
    global batch, so the step equals one step on the whole global batch. Returns one value a replica:
    its mean loss (``per_micro_batch``: the mean of each micro-batch), for :func:`reduce_metric`."""
    import tensorflow as tf

    if not isinstance(num_micro_batch, int) or not 1 <= num_micro_batch <= MAX_MICRO_BATCHES:
        raise ValueError(f"num_micro_batch: 1 to {MAX_MICRO_BATCHES}, got {num_micro_batch!r}")
    if not model.built or not model.trainable_variables:
        raise ValueError("model: build it first (an Input layer, or call it on a batch) so its weights exist")
    comm = comm or CommOptions.from_env()
    variables = list(model.trainable_variables)
    gradient_bytes = sum(math.prod(v.shape) * tf.as_dtype(v.dtype).size for v in variables)
    skip = _aggregates_itself(optimizer)
    if skip is None and (comm.dense_fp16 or comm.num_splits or comm.sparse_as_dense):
        warn_once(
            "keras3-reduce",
            "this optimizer (Keras 3) all-reduces the gradients itself: dense_fp16, num_splits and sparse_as_dense "
            "are not applied (use a tf_keras optimizer for them; pack_size applies through the strategy)",
        )
    # the optimizer's variables are made here, not inside the step: tf.function cannot make them under
    # several replicas (Keras 3 fails with "You must feed a value for placeholder tensor")
    with strategy.scope():
        optimizer.build(variables)
    k = num_micro_batch

    def replica_step(batch):
        context = tf.distribute.get_replica_context()
        replicas = context.num_replicas_in_sync
        size = tf.shape(tf.nest.flatten(batch)[0])[0]
        tf.debugging.assert_equal(size % k, 0, message=f"a replica's batch must divide into {k} micro-batches")
        micro = size // k
        total = tf.cast(size * replicas, tf.float32)
        grads = [tf.zeros_like(v) for v in variables]
        losses = tf.TensorArray(tf.float32, size=k)
        for i in tf.range(k):
            part = tf.nest.map_structure(lambda t, i=i: t[i * micro : (i + 1) * micro], batch)
            with tf.GradientTape() as tape:
                per_example = tf.cast(loss_fn(model, part), tf.float32)
                loss = tf.reduce_sum(per_example) / total
                if model.losses:
                    loss += tf.add_n(model.losses) / float(k) / tf.cast(replicas, tf.float32)
            step_grads = tape.gradient(loss, variables)
            grads = [a if g is None else a + tf.convert_to_tensor(g) for a, g in zip(grads, step_grads)]
            losses = losses.write(i, tf.reduce_mean(per_example))
        if skip is None:
            optimizer.apply_gradients(zip(grads, variables))
        else:
            reduced = reduce_gradients(grads, comm, gradient_bytes)
            flag = {skip: skip == "skip_gradients_aggregation"}
            optimizer.apply_gradients(zip(reduced, variables), **flag)
        means = losses.stack()
        return means if per_micro_batch else tf.reduce_mean(means)

    @tf.function
    def step(batch):
        return strategy.run(replica_step, args=(batch,))

    return step
