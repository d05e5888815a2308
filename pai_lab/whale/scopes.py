"""Whale's scopes on tf.distribute: ``replica`` (data parallel) works, ``stage``, ``pipeline`` and ``split``
say what Whale does with them and that pai_lab trains data parallel only.

One process, one strategy: ``MultiWorkerMirroredStrategy`` over the job's ranks when the cluster has
more than one worker, else ``MirroredStrategy`` over this process's GPUs (or its CPU). TensorFlow lets a
process set up its collectives once, so the first of :func:`init`, :func:`replica` or
:func:`auto_parallel` makes the strategy and the others reuse it.
"""

from __future__ import annotations

from typing import Any

from pai_lab.whale import _state
from pai_lab.whale.cluster import Cluster
from pai_lab.whale.comm import CommOptions
from pai_lab.whale.metrics import GraphKeys, reduce_metric
from pai_lab.whale.steps import MAX_MICRO_BATCHES, distribute, make_train_step


class WhaleUnsupported(NotImplementedError):
    """A Whale parallelism pai_lab does not do."""


_DATA_PARALLEL_ONLY = "pai_lab trains data parallel only: put the whole model under `with wh.replica():`"


def stage(devices: Any = None, name: str | None = None):
    """Not supported: Whale's inter-layer model parallelism."""
    raise WhaleUnsupported(
        "wh.stage: Whale places each stage's layers on devices of their own and sends the activations from "
        f"stage to stage (inter-layer model parallelism); {_DATA_PARALLEL_ONLY}"
    )


def pipeline(num_micro_batch: int = 1, devices: Any = None, strategy: str | None = None, name: str | None = None):
    """Not supported: Whale's pipeline of stages over micro-batches."""
    raise WhaleUnsupported(
        "wh.pipeline: Whale runs its stages' micro-batches as a pipeline across devices (with wh.stage); "
        f"{_DATA_PARALLEL_ONLY}. For Whale's gradient accumulation over num_micro_batch micro-batches, use "
        "wh.replica(num_micro_batch=k)"
    )


def split(devices: Any = None, name: str | None = None):
    """Not supported: Whale's operator splitting."""
    raise WhaleUnsupported(
        "wh.split: Whale shards an operator's weights and computation across devices (e.g. a large classifier's "
        f"columns, with a softmax across them); {_DATA_PARALLEL_ONLY}"
    )


def current_scope_as_default() -> None:
    """Whale's way to place ops made outside a scope; not needed here: a model built under
    ``wh.replica()`` is mirrored, and plain ops run where TensorFlow puts them."""


def strategy(cluster: Cluster | None = None, comm: CommOptions | None = None):
    """The process's strategy, made on first use from ``cluster`` (the one in a ``with wh.cluster()``,
    else one from ``TF_CONFIG``) and ``comm`` (else Whale's environment variables)."""
    if _state.strategy is not None:
        return _state.strategy
    import tensorflow as tf

    cluster = cluster or _state.current_cluster() or Cluster()
    comm = comm or CommOptions.from_env()
    if cluster.worker_num > 1:
        resolver = None
        if not _tf_config_matches(cluster):
            resolver = tf.distribute.cluster_resolver.SimpleClusterResolver(
                tf.train.ClusterSpec({"worker": cluster.worker_hosts}), task_type="worker", task_id=cluster.rank
            )
        made = tf.distribute.MultiWorkerMirroredStrategy(
            cluster_resolver=resolver, communication_options=comm.tf_options()
        )
    else:
        gpus = [f"/gpu:{i}" for i in range(cluster.gpu_num_per_worker)]
        made = tf.distribute.MirroredStrategy(gpus or ["/cpu:0"])
    _state.strategy = made
    return made


def _tf_config_matches(cluster: Cluster) -> bool:
    from pai_lab.whale.cluster import read_tf_config

    try:
        hosts, rank = read_tf_config()
    except ValueError:
        return False
    return hosts == cluster.worker_hosts and rank == cluster.rank


def init(comm: CommOptions | None = None) -> None:
    """Whale's ``init()``: set up data parallel for this process (call it first, before other TensorFlow
    work: the ranks' collectives are configured once)."""
    _state.initialized = True
    strategy(comm=comm)


class Replica:
    """What ``wh.replica()`` gives: the strategy's scope while entered, and the data-parallel helpers."""

    def __init__(self, devices: Any = None, name: str | None = None, num_micro_batch: int = 1, comm=None):
        if isinstance(num_micro_batch, bool) or not isinstance(num_micro_batch, int):
            raise ValueError(f"num_micro_batch: a whole number of micro-batches a step, got {num_micro_batch!r}")
        if not 1 <= num_micro_batch <= MAX_MICRO_BATCHES:
            raise ValueError(f"num_micro_batch: 1 to {MAX_MICRO_BATCHES} micro-batches a step, got {num_micro_batch!r}")
        if devices is not None:
            if not isinstance(devices, (list, tuple)) or not all(isinstance(d, str) for d in devices) or not devices:
                raise ValueError(f"devices: a list of this process's device names, e.g. ['/cpu:0'], got {devices!r}")
            if _state.strategy is None:
                import tensorflow as tf

                _state.strategy = tf.distribute.MirroredStrategy(list(devices))
            else:
                _state.warn_once("devices", "devices: this process's strategy is already made; the devices are ignored")
        self.name = name
        self.num_micro_batch = num_micro_batch
        self.comm = comm or CommOptions.from_env()
        self.cluster = _state.current_cluster() or Cluster()
        self.strategy = strategy(self.cluster, self.comm)
        self._scope: Any = None

    @property
    def num_replicas(self) -> int:
        return int(self.strategy.num_replicas_in_sync)

    @property
    def rank(self) -> int:
        return self.cluster.rank

    @property
    def is_chief(self) -> bool:
        return self.cluster.rank == 0

    def __enter__(self) -> Replica:
        self._scope = self.strategy.scope()
        self._scope.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        scope, self._scope = self._scope, None
        if scope is not None:
            scope.__exit__(*exc)

    def distribute(self, dataset, global_batch: int):
        """See :func:`pai_lab.whale.steps.distribute`."""
        return distribute(self.strategy, dataset, global_batch)

    def shard_files(self, files, policy: str | None = None, seed: int = 0) -> list[str]:
        """This rank's share of ``files`` (see :meth:`Cluster.shard_files`)."""
        return self.cluster.shard_files(files, policy, seed)

    def train_step(self, model, optimizer, loss_fn, *, per_micro_batch: bool = False):
        """See :func:`pai_lab.whale.steps.make_train_step`; micro-batches and knobs from this replica."""
        return make_train_step(
            self.strategy,
            model,
            optimizer,
            loss_fn,
            num_micro_batch=self.num_micro_batch,
            comm=self.comm,
            per_micro_batch=per_micro_batch,
        )

    def reduce(self, value, key: str = GraphKeys.GLOBAL_MEAN_OBJECTS):
        return reduce_metric(value, key, self.strategy)

    def __repr__(self) -> str:
        return (
            f"Replica({type(self.strategy).__name__}, replicas={self.num_replicas}, rank={self.rank}/"
            f"{self.cluster.worker_num}, num_micro_batch={self.num_micro_batch})"
        )

    def _repr_html_(self) -> str:
        return f"<div><b>Whale replica</b>: {self!r}</div>{self.cluster._repr_html_()}"


def replica(devices: Any = None, name: str | None = None, num_micro_batch: int = 1, comm: CommOptions | None = None):
    """Whale's ``replica()``: data parallel. ``with wh.replica() as rep:`` builds the model and optimizer
    mirrored on every replica; ``rep.distribute``, ``rep.train_step`` and ``rep.reduce`` train with it.
    ``devices``: this process's devices (one-process runs), else every device of the cluster."""
    return Replica(devices, name, num_micro_batch, comm)


def auto_parallel(modes: Any = "replica", **options: Any) -> Replica:
    """Whale's ``auto_parallel(wh.replica)``: data parallel for everything that follows, without a
    ``with`` block; returns the (entered) :class:`Replica`. Whale supports only ``replica`` here too."""
    wanted = modes if isinstance(modes, (list, tuple)) else [modes]
    names = [getattr(m, "__name__", m) for m in wanted]
    if names != ["replica"]:
        raise WhaleUnsupported(
            f"auto_parallel({', '.join(map(str, names))}): only 'replica' (automatic data parallel) is supported, "
            "as in Whale itself"
        )
    _state.initialized = True
    chosen = Replica(**options)
    chosen.__enter__()
    return chosen
