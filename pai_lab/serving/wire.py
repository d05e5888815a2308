"""Frames between the gateway and its instance processes.

A frame is a fixed header (the pickle's length and how many out-of-band buffers follow), one
8-byte length per buffer, the pickle (protocol 5), then the buffers. Numpy arrays travel as those
out-of-band buffers: the sender hands the array's own memory to the socket (no copy into the
pickle, no joined frame), and the receiver reads each buffer straight into memory of its own that
the unpickled array then uses, so a tensor is copied by the kernel and by nobody else."""

from __future__ import annotations

import pickle
import struct
from typing import Any

HEADER = struct.Struct("!IH")
LENGTH = struct.Struct("!Q")
JOIN_BELOW = 64 << 10  # a frame smaller than this goes out as one write: a copy is cheaper than a syscall
MAX_BUFFERS = 4096
MAX_FRAME = 1 << 30  # bytes one frame may announce: an instance runs member code, the gateway's memory is bounded


def pack_parts(message) -> list:
    """The frame of ``message`` as the pieces to write in order (bytes and memoryviews)."""
    buffers: list[pickle.PickleBuffer] = []
    body = pickle.dumps(message, protocol=5, buffer_callback=buffers.append)
    if not buffers:
        return [HEADER.pack(len(body), 0) + body]
    raws = [b.raw() for b in buffers]
    head = HEADER.pack(len(body), len(raws)) + b"".join(LENGTH.pack(r.nbytes) for r in raws)
    if len(body) + sum(r.nbytes for r in raws) < JOIN_BELOW:
        return [b"".join([head, body, *raws])]
    return [head + body, *raws]


def pack(message) -> bytes:
    """The frame of ``message`` as one bytes object."""
    return b"".join(pack_parts(message))


def _lengths(head: bytes) -> tuple[int, int]:
    size, count = HEADER.unpack(head)
    if count > MAX_BUFFERS or size > MAX_FRAME:
        raise ValueError(f"a frame announces {count} buffers and {size} bytes")
    return size, count


def read_frame(sock_file) -> Any:
    """Blocking read of one frame from a binary file object; None at end of stream. Each
    out-of-band buffer is read into a bytearray of its own, which the unpickled arrays use
    (writable, no further copy)."""
    head = sock_file.read(HEADER.size)
    if len(head) < HEADER.size:
        return None
    size, count = _lengths(head)
    sizes = sock_file.read(LENGTH.size * count) if count else b""
    if len(sizes) < LENGTH.size * count:
        return None
    body = sock_file.read(size)
    if len(body) < size:
        return None
    buffers = []
    for i in range(count):
        (n,) = LENGTH.unpack_from(sizes, i * LENGTH.size)
        buf = bytearray(n)
        view, got = memoryview(buf), 0
        while got < n:
            step = sock_file.readinto(view[got:])
            if not step:
                return None
            got += step
        buffers.append(buf)
    return pickle.loads(body, buffers=buffers)


def send_parts(sock, parts: list) -> None:
    """Write a frame's pieces to a blocking socket with scatter-gather sends (no joining)."""
    views = [memoryview(p).cast("B") for p in parts]
    while views:
        sent = sock.sendmsg(views)
        while views and sent >= views[0].nbytes:
            sent -= views[0].nbytes
            views.pop(0)
        if views and sent:
            views[0] = views[0][sent:]


def write_frame(writer, message) -> None:
    """Queue one frame on an asyncio transport or StreamWriter, each piece as it is."""
    for part in pack_parts(message):
        writer.write(part)


class FrameReader:
    """The frames of a byte stream fed to it piece by piece (an asyncio protocol's data_received),
    so that whoever reads the socket gets its messages in the same call, without a task of its own
    awaiting each piece. A frame that arrived whole in one piece is unpickled from that piece; one
    split across pieces is gathered first. Buffers are never resized once a message uses them."""

    def __init__(self) -> None:
        self._held = bytearray()

    def feed(self, data: bytes) -> list:
        """The messages completed by ``data``, in order (ValueError: a malformed frame)."""
        if self._held:
            self._held += data
            src: bytes | bytearray = self._held
        else:
            src = data
        messages, pos, total = [], 0, len(src)
        while True:
            frame = _frame_at(src, pos, total)
            if frame is None:
                break
            message, pos = frame
            messages.append(message)
        if src is self._held:
            if messages:  # the messages may use this buffer's memory: keep the rest in a new one
                self._held = bytearray(memoryview(src)[pos:])
        elif pos < total:
            self._held = bytearray(memoryview(src)[pos:])
        return messages


def _frame_at(src, pos: int, total: int) -> tuple[Any, int] | None:
    """The message of the frame starting at ``pos`` and where it ends; None while incomplete."""
    if total - pos < HEADER.size:
        return None
    size, count = HEADER.unpack_from(src, pos)
    if count > MAX_BUFFERS:
        raise ValueError(f"a frame announces {count} buffers")
    at = pos + HEADER.size
    if total < at + LENGTH.size * count:
        return None
    sizes = [LENGTH.unpack_from(src, at + i * LENGTH.size)[0] for i in range(count)]
    if size + sum(sizes) > MAX_FRAME:
        raise ValueError(f"a frame announces {size + sum(sizes)} bytes")
    at += LENGTH.size * count
    end = at + size + sum(sizes)
    if total < end:
        return None
    view = memoryview(src)
    body, at = view[at : at + size], at + size
    buffers = []
    for n in sizes:
        buffers.append(view[at : at + n])
        at += n
    return pickle.loads(body, buffers=buffers), end


async def read_frame_async(reader) -> Any:
    size, count = _lengths(await reader.readexactly(HEADER.size))
    sizes = await reader.readexactly(LENGTH.size * count) if count else b""
    body = await reader.readexactly(size)
    buffers = []
    for i in range(count):
        (n,) = LENGTH.unpack_from(sizes, i * LENGTH.size)
        buffers.append(await reader.readexactly(n) if n else b"")
    return pickle.loads(body, buffers=buffers)
