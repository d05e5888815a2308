"""Frames between the gateway and its instance processes.

A frame is a fixed header (the pickle's length and how many out-of-band buffers follow), one
8-byte length per buffer, the pickle (protocol 5), then the buffers. Numpy arrays travel as those
out-of-band buffers: the sender hands the array's own memory to the socket (no copy into the
pickle, no joined frame, all pieces in one scatter-gather write), and the receiver reads each buffer
straight into memory of its own that the unpickled array then uses, so a tensor is copied by the kernel
and by nobody else. The instance's buffers start on 64-byte boundaries, as a model's kernels want
them, so that a framework may take the array's memory as it is instead of copying it."""

from __future__ import annotations

import os
import pickle
import struct
from typing import Any

import numpy as np

HEADER = struct.Struct("!IH")
LENGTH = struct.Struct("!Q")
JOIN_BELOW = 64 << 10  # a frame smaller than this goes out as one write: a copy is cheaper than a syscall
MAX_BUFFERS = 4096
MAX_FRAME = 1 << 30  # bytes one frame may announce: an instance runs member code, the gateway's memory is bounded
ALIGN = 64  # where the instance's buffers start: a cache line, and what TensorFlow's kernels take without a copy
MAX_PIECES = 1024  # IOV_MAX on Linux: pieces one writev takes


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


def aligned_buffer(n: int) -> np.ndarray:
    """``n`` writable bytes of memory of their own, starting on an ALIGN-byte boundary."""
    raw = np.empty(n + ALIGN, dtype=np.uint8)
    start = -raw.ctypes.data % ALIGN
    return raw[start : start + n]


def read_frame(sock_file) -> Any:
    """Blocking read of one frame from a binary file object; None at end of stream. Each
    out-of-band buffer is read into aligned memory of its own (:func:`aligned_buffer`), which the
    unpickled arrays use (writable, no further copy)."""
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
        buf = aligned_buffer(n)
        view, got = buf.data, 0
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
    """One frame onto an asyncio transport or StreamWriter. While nothing waits in the transport's
    buffer the pieces go to the socket in one writev (one system call, and the instance wakes once
    for the whole frame rather than once for its head and again for each tensor); what the socket
    does not take, and every frame while older ones wait, is queued on the transport as it is."""
    parts = pack_parts(message)
    transport = getattr(writer, "transport", writer)
    sent = 0
    if 1 < len(parts) <= MAX_PIECES and not transport.get_write_buffer_size() and not transport.is_closing():
        # the socket itself only under a plain transport: under TLS the bytes must go through it
        sock = None if transport.get_extra_info("sslcontext") is not None else transport.get_extra_info("socket")
        try:
            sent = os.writev(sock.fileno(), parts) if sock is not None else 0
        except OSError:  # full (all of it queued below), or failing: the transport's own write meets that
            sent = 0  # failure and ends the connection its way
    for part in parts:
        size = memoryview(part).nbytes
        if sent >= size:
            sent -= size
            continue
        writer.write(memoryview(part).cast("B")[sent:] if sent else part)
        sent = 0


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
