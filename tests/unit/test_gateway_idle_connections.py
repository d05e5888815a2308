"""The gateway closes connections that stay idle (by a periodic sweep, not a timer per request) and
keeps those that keep sending requests."""

import asyncio

from tornado import netutil

from pai_lab.serving.gateway.core import Gateway
from pai_lab.serving.gateway.entry import http_server

REQUEST = b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\n\r\n"


async def _answer(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    length = int(
        next(line for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")).split(b":")[1]
    )
    return head + await reader.readexactly(length)


def test_idle_connections_are_closed_and_busy_ones_kept(tmp_path):
    async def main():
        gateway = Gateway(tmp_path, "secret")
        server = http_server(gateway)
        [sock] = netutil.bind_sockets(0, "127.0.0.1")
        server.add_sockets([sock])
        port = sock.getsockname()[1]
        sweeper = asyncio.create_task(server.close_idle(0.3))
        idle_r, _idle_w = await asyncio.open_connection("127.0.0.1", port)
        busy_r, busy_w = await asyncio.open_connection("127.0.0.1", port)
        try:
            for _ in range(12):  # 1.2 s: four sweeps
                busy_w.write(REQUEST)
                assert b'"live": true' in await _answer(busy_r)
                await asyncio.sleep(0.1)
            assert await asyncio.wait_for(idle_r.read(), 5) == b""  # the server closed it
            busy_w.write(REQUEST)
            assert b"200 OK" in await _answer(busy_r)
        finally:
            sweeper.cancel()
            server.stop()
            await gateway.close()

    asyncio.run(main())
