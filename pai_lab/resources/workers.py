"""The workers a Dask scheduler lists, asked of the scheduler itself."""

from __future__ import annotations

import inspect
from functools import cache
from typing import Any


@cache
def _identity_takes_n_workers() -> bool:
    from distributed import Client

    return "n_workers" in inspect.signature(Client.scheduler_info).parameters


def scheduler_workers(client: Any) -> dict[str, dict]:
    """Every worker of ``client``'s scheduler with its info (nthreads, memory_limit, resources, name...).

    ``client.scheduler_info()`` answers from the client's cached copy, which the client's periodic refresh
    replaces with one that lists only a few workers, or none, at times between the call's own refresh and
    its return (a busy machine widens that gap): a job's or a service's workers then looked gone. So a
    synchronous client asks the scheduler directly; older distributed, whose cache lists every worker, is
    read as before."""
    if _identity_takes_n_workers() and not client.asynchronous:
        info = client.sync(client.scheduler.identity, n_workers=-1)
    else:
        info = client.scheduler_info()
    return dict(info.get("workers", {}))
