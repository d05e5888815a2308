"""Calls the server answers with "computing ..., retry" (503, code ``computing``, a Retry-After) while
work the call started goes on in the background, such as a large task's first image embedding: asked
again until they are done, with how far the server got shown."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

from pai_lab.errors import Unavailable

T = TypeVar("T")


def retried_while_computing(
    call: Callable[[], T], description: str, progress: bool | Any = True, timeout: float | None = None
) -> T:
    """``call()``, again after each "computing" answer (its Retry-After apart) until it answers, for at
    most ``timeout`` seconds (None: as long as the server computes); ``progress``: show the server's
    message (True: on the terminal or notebook, a file: there, False: not at all)."""
    deadline = None if timeout is None else time.monotonic() + timeout
    bar = None
    try:
        while True:
            try:
                return call()
            except Unavailable as exc:
                if exc.code != "computing":
                    raise
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    raise TimeoutError(f"{description}: not done after {timeout} s ({exc.message})") from None
                if progress and bar is None:
                    from tqdm.auto import tqdm

                    bar = tqdm(
                        desc=description, bar_format="{desc} [{elapsed}]", file=None if progress is True else progress
                    )
                if bar is not None:
                    bar.set_description_str(f"{description}: {exc.message}")
                pause = exc.retry_after or 1.0
                time.sleep(pause if left is None else min(pause, left))
    finally:
        if bar is not None:
            bar.close()
