"""The process's Whale state: the cluster in use, the one strategy, the knobs already warned about."""

from __future__ import annotations

import warnings
from typing import Any

_clusters: list[Any] = []
_warned: set[str] = set()
strategy: Any = None
strategy_key: tuple | None = None
initialized = False


def push_cluster(cluster: Any) -> int:
    _clusters.append(cluster)
    return len(_clusters) - 1


def pop_cluster(token: int) -> None:
    del _clusters[token:]


def current_cluster() -> Any:
    return _clusters[-1] if _clusters else None


def warn_once(key: str, message: str) -> None:
    """A warning the process shows once, however often the knob is read."""
    if key not in _warned:
        _warned.add(key)
        warnings.warn(message, UserWarning, stacklevel=3)
