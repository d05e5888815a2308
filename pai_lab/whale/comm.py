"""Whale's communication knobs, mapped onto tf.distribute where TensorFlow has a match.

============================================  ===============================================================
Whale (``WHALE_COMMUNICATION_*``)             here
============================================  ===============================================================
``NUM_SPLITS`` (gradient fusion groups)       all-reduce packs of ceil(gradient bytes / num_splits) bytes
                                              (``CommunicationOptions.bytes_per_pack``) in ``wh``'s train step
``pack_size`` (no Whale variable)             ``bytes_per_pack`` as given, also for ``model.fit`` (the strategy's)
``DENSE_FP16`` + ``FP16_SCALE``               dense gradients all-reduced as float16 (times the scale, then back)
``SPARSE_AS_DENSE``                           sparse gradients made dense before the all-reduce
``NUM_COMMUNICATORS``,                        accepted and warned about once: TensorFlow has no such switch
``HIERARCHICAL_ALL_REDUCE``,                  (run one rank per machine owning all its GPUs for a local
``HIERARCHICAL_ALL_GATHER``, ``SPARSE_FP16``  all-reduce first)
============================================  ===============================================================

``timeout_seconds`` and ``implementation`` ("auto", "ring", "nccl") are TensorFlow's own, not Whale's.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, fields
from typing import Any

from pai_lab.whale._state import warn_once

PREFIX = "WHALE_COMMUNICATION_"
IMPLEMENTATIONS = ("auto", "ring", "nccl")
UNMAPPED = ("num_communicators", "hierarchical_all_reduce", "hierarchical_all_gather", "sparse_fp16")
MAX_PACK = 1 << 40
_WHY = {
    "num_communicators": "NCCL and gRPC manage their own channels",
    "hierarchical_all_reduce": "tf.distribute has no hierarchical all-reduce; one rank per machine with all its GPUs "
    "reduces locally first",
    "hierarchical_all_gather": "tf.distribute has no hierarchical all-gather",
    "sparse_fp16": "sparse gradients travel as they are (set sparse_as_dense with dense_fp16 to halve them)",
}


def _flag(value: str) -> bool:
    text = value.strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(f"a true/false value, got {value!r}")


@dataclass(frozen=True)
class CommOptions:
    """How gradients cross the replicas. Read Whale's variables with :meth:`from_env`."""

    num_splits: int | None = None
    pack_size: int = 0
    dense_fp16: bool = False
    fp16_scale: float | None = None
    sparse_as_dense: bool = False
    timeout_seconds: float | None = None
    implementation: str = "auto"
    num_communicators: int | None = None
    hierarchical_all_reduce: bool = False
    hierarchical_all_gather: bool = False
    sparse_fp16: bool = False

    def __post_init__(self) -> None:
        if self.num_splits is not None and not 1 <= self.num_splits <= 10_000:
            raise ValueError(f"num_splits: 1 to 10000 fusion groups, got {self.num_splits!r}")
        if not 0 <= self.pack_size <= MAX_PACK:
            raise ValueError(
                f"pack_size: bytes per all-reduce pack, 0 (TensorFlow decides) to 2**40, got {self.pack_size!r}"
            )
        if self.fp16_scale is not None and not (math.isfinite(self.fp16_scale) and self.fp16_scale > 0):
            raise ValueError(f"fp16_scale: a positive gradient scale, got {self.fp16_scale!r}")
        if self.timeout_seconds is not None and not 0 < self.timeout_seconds <= 86_400:
            raise ValueError(f"timeout_seconds: 0 to 86400 s, got {self.timeout_seconds!r}")
        if self.implementation not in IMPLEMENTATIONS:
            raise ValueError(f"implementation: one of {', '.join(IMPLEMENTATIONS)}, got {self.implementation!r}")
        for name in UNMAPPED:
            if getattr(self, name) not in (None, False):
                warn_once(name, f"Whale's {PREFIX}{name.upper()} is accepted and ignored: {_WHY[name]}")

    @classmethod
    def from_env(cls, environ: dict | None = None, **overrides: Any) -> CommOptions:
        """Options from ``WHALE_COMMUNICATION_*`` (and ``..._PACK_SIZE``, ``..._TIMEOUT_SECONDS``,
        ``..._IMPLEMENTATION``), then ``overrides``."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for field in fields(cls):
            raw = env.get(PREFIX + field.name.upper())
            if raw is None or raw.strip().lower() in ("", "none"):
                continue
            try:
                if field.name in ("num_splits", "pack_size", "num_communicators"):
                    values[field.name] = int(raw)
                elif field.name in ("fp16_scale", "timeout_seconds"):
                    values[field.name] = float(raw)
                elif field.name == "implementation":
                    values[field.name] = raw.strip().lower()
                else:
                    values[field.name] = _flag(raw)
            except ValueError:
                raise ValueError(f"{PREFIX}{field.name.upper()}: cannot read {raw!r}") from None
        values.update(overrides)
        return cls(**values)

    def bytes_per_pack(self, gradient_bytes: int | None = None) -> int:
        """``pack_size``, else ceil(gradient_bytes / num_splits) when both are known, else 0 (TensorFlow decides)."""
        if self.pack_size:
            return self.pack_size
        if self.num_splits and gradient_bytes:
            return math.ceil(gradient_bytes / self.num_splits)
        return 0

    def tf_options(self, gradient_bytes: int | None = None):
        """The ``tf.distribute.experimental.CommunicationOptions`` these knobs map to."""
        import tensorflow as tf

        kinds = tf.distribute.experimental.CommunicationImplementation
        return tf.distribute.experimental.CommunicationOptions(
            bytes_per_pack=self.bytes_per_pack(gradient_bytes),
            timeout_seconds=self.timeout_seconds,
            implementation={"auto": kinds.AUTO, "ring": kinds.RING, "nccl": kinds.NCCL}[self.implementation],
        )
