"""Frames between the gateway and an instance, over a real socket pair: arrays cross as out-of-band
buffers in both directions, whole, with their dtypes and shapes, and the instance side gets arrays it
may write to."""

import asyncio
import socket
import threading

import numpy as np
import pytest

from pai_lab.serving import wire


def messages():
    big = np.arange(300_000, dtype=np.float32).reshape(-1, 30)  # well past one socket write
    return [
        (1, "predict", {"signature_name": None, "inputs": {"x": big, "empty": np.zeros((0, 3))}}),
        (2, "ok", {"label": np.array([b"cat", b"dog"], dtype=object), "score": np.float32([0.5, 0.25])}),
        ("loaded", {"kind": "tensorflow", "signatures": {}}),
        (3, "process", b"raw body"),
    ]


def same(a, b):
    if isinstance(a, np.ndarray):
        return isinstance(b, np.ndarray) and a.dtype == b.dtype and a.shape == b.shape and (a == b).all()
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, tuple):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return a == b


def test_the_instance_side_reads_what_the_gateway_writes():
    ours, theirs = socket.socketpair()
    sent = messages()

    def write():
        for message in sent:
            wire.send_parts(ours, wire.pack_parts(message))
        ours.close()

    writer = threading.Thread(target=write)
    writer.start()
    reader = theirs.makefile("rb", buffering=1 << 16)
    got = []
    while (frame := wire.read_frame(reader)) is not None:
        got.append(frame)
    writer.join()
    assert len(got) == len(sent) and all(same(a, b) for a, b in zip(sent, got))
    big = got[0][2]["inputs"]["x"]
    assert big.flags.writeable  # read into memory of its own: the model may use it in place
    big[0, 0] = -1.0


def test_the_gateway_side_reads_what_the_instance_writes():
    sent = messages()

    async def main():
        ours, theirs = socket.socketpair()
        reader, writer = await asyncio.open_connection(sock=theirs)
        feeder = threading.Thread(target=lambda: [wire.send_parts(ours, wire.pack_parts(m)) for m in sent])
        feeder.start()
        got = [await wire.read_frame_async(reader) for _ in sent]
        feeder.join()
        # and the other way: the gateway's writer queues pieces that arrive as one frame
        reading = asyncio.get_running_loop().run_in_executor(None, wire.read_frame, ours.makefile("rb"))
        wire.write_frame(writer, sent[0])
        await writer.drain()
        echoed = await reading
        writer.close()
        ours.close()
        return got, echoed

    got, echoed = asyncio.run(main())
    assert all(same(a, b) for a, b in zip(sent, got)) and same(sent[0], echoed)


def test_a_frame_cut_short_reads_as_the_end():
    ours, theirs = socket.socketpair()
    data = wire.pack(messages()[0])
    writer = threading.Thread(target=lambda: (ours.sendall(data[: len(data) // 2]), ours.close()))
    writer.start()
    assert wire.read_frame(theirs.makefile("rb")) is None
    writer.join()


def test_frames_fed_in_any_pieces_come_out_whole_and_in_order():
    sent = messages()
    stream = b"".join(wire.pack(m) for m in sent)
    for cut in (1, 7, 4096, 65536, len(stream)):  # byte by byte up to all at once
        frames = wire.FrameReader()
        got = []
        for at in range(0, len(stream), cut):
            got.extend(frames.feed(stream[at : at + cut]))
        assert len(got) == len(sent) and all(same(a, b) for a, b in zip(sent, got)), cut
    frames = wire.FrameReader()
    first = frames.feed(stream[:-1])  # the last frame lacks a byte: held back until it comes
    assert len(first) == 3 and all(same(a, b) for a, b in zip(sent, first))
    assert frames.feed(b"") == [] and frames.feed(stream[-1:]) == [sent[3]]
    assert first[0][2]["inputs"]["x"][0, 0] == 0.0  # arrays of earlier frames kept their memory


def test_a_frame_announcing_too_many_buffers_is_refused():
    with pytest.raises(ValueError, match="buffers"):
        wire.FrameReader().feed(wire.HEADER.pack(10, wire.MAX_BUFFERS + 1))


def test_frames_written_back_to_back_arrive_whole_and_in_order():
    """Several frames written at once, each far larger than the socket takes in one call: the first
    goes out in one scatter-gather write as far as the socket takes it, the rest wait behind it on the
    transport, and the instance side reads them all, in order, into aligned memory of their own."""
    sent = [(i, "predict", {"x": np.full((40_000, 8), i, dtype=np.float32), "y": np.arange(i + 1)}) for i in range(5)]

    async def main():
        ours, theirs = socket.socketpair()
        theirs.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 16)  # forces partial writes
        _, writer = await asyncio.open_connection(sock=theirs)

        def read_all():
            ours.settimeout(60)  # a garbled stream fails the test instead of hanging it
            reader = ours.makefile("rb", buffering=1 << 16)
            return [wire.read_frame(reader) for _ in sent]

        reading = asyncio.get_running_loop().run_in_executor(None, read_all)
        for message in sent:
            wire.write_frame(writer, message)
        assert writer.transport.get_write_buffer_size() > 0  # the socket did not take everything at once
        await writer.drain()
        got = await reading
        writer.close()
        ours.close()
        return got

    got = asyncio.run(main())
    assert all(same(a, b) for a, b in zip(sent, got))
    assert all(frame[2]["x"].ctypes.data % wire.ALIGN == 0 for frame in got)
