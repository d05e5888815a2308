"""The port a rank listens on.

A job's cluster spec names every rank's host and port, and a rank that rejoins (enableDynamicCluster) must
listen at the same address again. Ranks therefore take ports below the kernel's ephemeral range: other
programs' outgoing connections and binds to port 0 take theirs from that range, so none of them can take a
rank's port in the seconds between the rank's exit and its return.
"""

from __future__ import annotations

import random
import socket
import time
from pathlib import Path

EPHEMERAL_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")
LOWEST_PORT = 10_000  # below it are the well-known and registered services people run
PICKS = 200
REJOIN_WAIT_SECONDS = 10.0  # another program may hold the port a moment (a connection closing)
_random = random.SystemRandom()


class PortTaken(OSError):
    """The port a rejoining rank must listen on again is held by another program."""


def _ephemeral_low() -> int | None:
    try:
        low, _high = (int(part) for part in EPHEMERAL_RANGE.read_text().split())
    except (OSError, ValueError):
        return None
    return low


def fresh(host: str = "") -> socket.socket:
    """A socket bound to a free port for a rank that starts: below the ephemeral range where the kernel
    says where that is, else any free port. The caller closes it just before the rank binds the port."""
    low = _ephemeral_low()
    if low is not None and low - LOWEST_PORT >= 1000:
        for _ in range(PICKS):
            # No SO_REUSEADDR: a port another rank is probing right now (bound, not yet listening) is refused
            sock = socket.socket()
            try:
                sock.bind((host, _random.randrange(LOWEST_PORT, low)))
                return sock
            except OSError:
                sock.close()
    sock = socket.socket()
    sock.bind((host, 0))
    return sock


def again(port: int, host: str = "", wait: float = REJOIN_WAIT_SECONDS) -> socket.socket:
    """A socket bound to ``port`` for a rank that rejoins, waiting up to ``wait`` s for it to be free."""
    deadline = time.monotonic() + wait
    while True:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # its earlier run's closing connections
        try:
            sock.bind((host, port))
            return sock
        except OSError as exc:
            sock.close()
            if time.monotonic() >= deadline:
                raise PortTaken(
                    f"cannot listen at port {port} again: another program holds it ({exc.strerror}); "
                    "a rank that rejoins needs the address the job's cluster spec gives it"
                ) from exc
        time.sleep(0.2)
