"""``wh.cluster``: the job's ranks and GPUs as Whale's virtual devices.

The ranks come from ``TF_CONFIG`` (pai_lab writes it for every rank of a job); a process without it is
a cluster of one rank. ``layout`` groups the devices into ``slices`` as Whale does (each slice a list of
per-replica device groups). pai_lab trains data parallel only, over every device, so the layout is
shown and checked but does not change where anything runs.
"""

from __future__ import annotations

import html
import json
import os
import re
from typing import Any

from pai_lab.whale import _state
from pai_lab.whale.sharding import shard_files

LAYOUTS = ("all", "average", "row", "column", "block", "specific")
MAX_DEVICES = 4096
_SPECIFIC = re.compile(r"^worker:(\d+)/(?:gpu|cpu):(\d+)$", re.IGNORECASE)


def device_name(worker: int, device: int, gpu: bool = True) -> str:
    return f"/job:worker/replica:0/task:{worker}/device:{'GPU' if gpu else 'CPU'}:{device}"


def _bad(message: str) -> ValueError:
    return ValueError(f"layout: {message}")


def compute_slices(workers: int, devices_per_worker: int, layout: Any = "all", gpu: bool = True) -> list:
    """Whale's ``slices`` for ``workers`` x ``devices_per_worker`` devices: a list of slices, each a list of
    device groups (one group per replica), each a list of device names.

    ``"all"``: one slice, every device its own group. ``{"average": n}`` / ``{"row": n}``: devices worker by
    worker, cut into slices of n. ``{"column": n}``: devices GPU index by GPU index across the workers, cut
    into slices of n. ``{"block": "a,b"}``: each worker's devices in blocks of a, b...; slice i holds block i
    of every worker, one group per worker (sizes adding up to the whole cluster instead cut it in order, one
    device a group). ``{"specific": [[["worker:0/gpu:0"], ...], ...]}``: as given."""
    if workers < 1 or devices_per_worker < 1 or workers * devices_per_worker > MAX_DEVICES:
        raise _bad(f"needs 1 to {MAX_DEVICES} devices, got {workers} worker(s) x {devices_per_worker}")

    def name(w: int, d: int) -> str:
        return device_name(w, d, gpu)

    by_row = [name(w, d) for w in range(workers) for d in range(devices_per_worker)]
    if layout == "all" or layout is None:
        return [[[d] for d in by_row]]
    if not isinstance(layout, dict) or len(layout) != 1:
        raise _bad(f'"all" or a dict with one of {", ".join(LAYOUTS[1:])}, e.g. {{"row": 4}}; got {layout!r}')
    kind, value = next(iter(layout.items()))
    if kind in ("average", "row", "column"):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1 or len(by_row) % value:
            raise _bad(f"{kind} takes a number of devices that divides the {len(by_row)} devices, got {value!r}")
        order = by_row
        if kind == "column":
            order = [name(w, d) for d in range(devices_per_worker) for w in range(workers)]
        return [[[d] for d in order[i : i + value]] for i in range(0, len(order), value)]
    if kind == "block":
        try:
            sizes = [int(s) for s in str(value).split(",")]
        except ValueError:
            sizes = []
        if not sizes or min(sizes) < 1:
            raise _bad(f'block takes block sizes such as "3,1", got {value!r}')
        starts = [sum(sizes[:i]) for i in range(len(sizes))]
        if sum(sizes) == devices_per_worker:
            return [[[name(w, d) for d in range(s, s + n)] for w in range(workers)] for s, n in zip(starts, sizes)]
        if sum(sizes) == len(by_row):
            return [[[d] for d in by_row[s : s + n]] for s, n in zip(starts, sizes)]
        raise _bad(
            f"block sizes {value!r} add up to {sum(sizes)}: make them add up to the {devices_per_worker} "
            f"devices of a worker or the {len(by_row)} of the cluster"
        )
    if kind == "specific":
        return _specific(value, workers, devices_per_worker, gpu)
    raise _bad(f"unknown policy {kind!r}; one of {', '.join(LAYOUTS)}")


def _specific(value: Any, workers: int, devices_per_worker: int, gpu: bool) -> list:
    if not isinstance(value, list) or not value:
        raise _bad('specific takes slices of device groups, e.g. [[["worker:0/gpu:0"], ["worker:0/gpu:1"]]]')
    slices = []
    for slice_ in value:
        groups = []
        for group in slice_ if isinstance(slice_, list) else [None]:
            names = []
            for item in group if isinstance(group, list) else [None]:
                match = _SPECIFIC.match(str(item))
                if not match or int(match[1]) >= workers or int(match[2]) >= devices_per_worker:
                    last = f"worker:{workers - 1}/gpu:{devices_per_worker - 1}"
                    raise _bad(f"specific device {item!r} is not one of worker:0/gpu:0 to {last}")
                names.append(device_name(int(match[1]), int(match[2]), gpu))
            groups.append(names)
        slices.append(groups)
    return slices


def read_tf_config(environ: dict | None = None) -> tuple[list[str], int]:
    """The training ranks' addresses (chief, master, then workers) and this process's place among them."""
    env = os.environ if environ is None else environ
    raw = env.get("TF_CONFIG")
    if not raw:
        return [], 0
    try:
        config = json.loads(raw)
        cluster = config.get("cluster", {})
        task = config.get("task", {})
        order = [(role, i) for role in ("chief", "master", "worker") for i in range(len(cluster.get(role) or []))]
        hosts = [cluster[role][i] for role, i in order]
        me = (task.get("type", "worker"), int(task.get("index", 0)))
    except (ValueError, TypeError, AttributeError, KeyError) as exc:
        raise ValueError(f"TF_CONFIG is not a TensorFlow cluster description: {exc}") from None
    if me not in order:
        raise ValueError(f"TF_CONFIG: this task {me[0]}:{me[1]} is not a training rank (chief, master or worker)")
    return hosts, order.index(me)


def local_gpu_count() -> int:
    """GPUs this process sees (TensorFlow's count; CUDA_VISIBLE_DEVICES when TensorFlow is absent)."""
    try:
        import tensorflow as tf

        return len(tf.config.list_physical_devices("GPU"))
    except ImportError:
        visible = os.environ.get("CUDA_VISIBLE_DEVICES", "")
        return len([g for g in visible.split(",") if g.strip() and g.strip() != "-1"])


class Cluster:
    """The job's hardware as virtual devices: ``rank``, ``worker_num``, ``gpu_num_per_worker``,
    ``total_gpu_num``, ``slices`` (Whale's names). ``with cluster:`` makes it the one ``wh.replica()`` uses."""

    def __init__(
        self,
        worker_hosts: list[str] | str | None = None,
        ps_hosts: list[str] | str | None = None,
        job_name: str = "worker",
        rank: int = 0,
        layout: Any = "all",
        gpus_per_worker: int | None = None,
    ):
        if ps_hosts:
            raise ValueError("ps_hosts: pai_lab trains data parallel with all-reduce; parameter servers are not used")
        if job_name not in ("worker", "chief", "master"):
            raise ValueError(f"job_name: a training rank's job (worker, chief or master), got {job_name!r}")
        if worker_hosts is None:
            hosts, rank = read_tf_config()
        else:
            hosts = worker_hosts.split(",") if isinstance(worker_hosts, str) else list(worker_hosts)
        self.worker_hosts = hosts or ["localhost"]
        self.worker_num = len(self.worker_hosts)
        if not isinstance(rank, int) or not 0 <= rank < self.worker_num:
            raise ValueError(f"rank: 0 to {self.worker_num - 1} for {self.worker_num} worker(s), got {rank!r}")
        self.rank = rank
        self.gpu_num_per_worker = local_gpu_count() if gpus_per_worker is None else int(gpus_per_worker)
        if not 0 <= self.gpu_num_per_worker <= MAX_DEVICES:
            raise ValueError(f"gpus_per_worker: 0 to {MAX_DEVICES}, got {gpus_per_worker!r}")
        self.total_gpu_num = self.gpu_num_per_worker * self.worker_num
        self.layout = layout
        # no GPU: each worker's CPU is its one device
        self.slices = compute_slices(
            self.worker_num, max(1, self.gpu_num_per_worker), layout, self.gpu_num_per_worker > 0
        )
        self._token: Any = None

    @property
    def master_ranks(self) -> list[int]:
        """Whale's master workers: the ranks owning a device of ``slices[0]`` (all of them under data parallel)."""
        found = {int(re.search(r"task:(\d+)", d)[1]) for group in self.slices[0] for d in group}  # type: ignore[index]
        return sorted(found)

    def shard_files(self, files, policy: str | None = None, seed: int = 0) -> list[str]:
        """This rank's share of ``files`` over the cluster's ranks (Whale shards by master workers; under data
        parallel every rank is one, whatever the layout); see :func:`pai_lab.whale.sharding.shard_files`."""
        return shard_files(files, self.worker_num, self.rank, policy, seed)

    def __enter__(self) -> Cluster:
        self._token = _state.push_cluster(self)
        return self

    def __exit__(self, *exc: object) -> None:
        _state.pop_cluster(self._token)

    def __repr__(self) -> str:
        return (
            f"Cluster(rank={self.rank}, worker_num={self.worker_num}, gpu_num_per_worker={self.gpu_num_per_worker}, "
            f"layout={self.layout!r}, slices={len(self.slices)})"
        )

    def _repr_html_(self) -> str:
        """Workers by devices, each cell coloured by its slice (Whale's layout pictures)."""
        palette = ["#cfe8ff", "#ffe0b3", "#d6f5d6", "#f5d6eb", "#e6e0ff", "#fff3b0", "#d9f2f2", "#f2d9d9"]
        where = {d: i for i, s in enumerate(self.slices) for group in s for d in group}
        per_worker = max(1, self.gpu_num_per_worker)
        kind = "GPU" if self.gpu_num_per_worker else "CPU"
        head = "".join(f"<th>{kind}:{d}</th>" for d in range(per_worker))
        rows = []
        for w in range(self.worker_num):
            cells = []
            for d in range(per_worker):
                s = where.get(device_name(w, d, self.gpu_num_per_worker > 0))
                colour = palette[s % len(palette)] if s is not None else "#eee"
                cells.append(f'<td style="background:{colour}">{"-" if s is None else f"slice {s}"}</td>')
            mark = " (this rank)" if w == self.rank else ""
            rows.append(f"<tr><th>worker {w}{html.escape(mark)}</th>{''.join(cells)}</tr>")
        return (
            f"<div><b>Whale cluster</b>: {self.worker_num} worker(s) x {self.gpu_num_per_worker} GPU(s), "
            f"layout {html.escape(repr(self.layout))}, {len(self.slices)} slice(s)"
            f"<table><tr><th></th>{head}</tr>{''.join(rows)}</table></div>"
        )


def cluster(
    worker_hosts: list[str] | str | None = None,
    ps_hosts: list[str] | str | None = None,
    job_name: str = "worker",
    rank: int = 0,
    layout: Any = "all",
) -> Cluster:
    """Whale's ``cluster()``: this job's ranks (from ``TF_CONFIG`` when ``worker_hosts`` is None) and GPUs,
    grouped by ``layout``. Use it as a context manager around ``wh.replica()``."""
    return Cluster(worker_hosts, ps_hosts, job_name, rank, layout)
