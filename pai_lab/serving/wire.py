"""Frames between the gateway and its instance processes: a 4-byte length, then a pickle.

Numpy arrays cross as pickle protocol 5 buffers, which is much cheaper than JSON."""

from __future__ import annotations

import pickle
import struct
from typing import Any

HEADER = struct.Struct("!I")


def pack(message) -> bytes:
    body = pickle.dumps(message, protocol=5)
    return HEADER.pack(len(body)) + body


def unpack(body: bytes) -> Any:
    return pickle.loads(body)


def read_frame(sock_file) -> Any:
    """Blocking read of one frame from a file object; None at end of stream."""
    head = sock_file.read(HEADER.size)
    if len(head) < HEADER.size:
        return None
    (size,) = HEADER.unpack(head)
    body = sock_file.read(size)
    if len(body) < size:
        return None
    return unpack(body)


async def read_frame_async(reader) -> Any:
    head = await reader.readexactly(HEADER.size)
    (size,) = HEADER.unpack(head)
    return unpack(await reader.readexactly(size))
