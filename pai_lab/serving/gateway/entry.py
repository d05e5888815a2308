"""The gateway process: ``python -m pai_lab.serving.gateway`` binds the port, writes
``gateway.json`` once it listens, and runs until SIGTERM (the control plane's, or its own when the
control plane is gone)."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import secrets
import signal
import socket
import weakref
from pathlib import Path

from tornado import httpserver, netutil

from pai_lab.serving.gateway import METRICS_TOKEN_ENV, SECRET_ENV
from pai_lab.serving.gateway.core import Gateway
from pai_lab.serving.gateway.handlers import make_app
from pai_lab.serving.gateway.predict import MAX_BODY

log = logging.getLogger("pai_lab.gateway")
LOOP_ENV = "PAI_LAB_GATEWAY_LOOP"  # auto | uvloop | asyncio: the event loop the gateway runs on
LOOPS = ("auto", "uvloop", "asyncio")
IDLE_SWEEP_S = 1800.0  # a connection without a request for one to two sweeps is closed


class _Server(httpserver.HTTPServer):
    """Tornado's HTTP server, with idle connections closed by a sweep rather than by the timer tornado
    puts on the headers of every request (a future, a timer and a callback per request)."""

    streams: weakref.WeakSet  # every connection
    active: weakref.WeakSet  # those that had a request (or opened) since the last sweep

    def handle_stream(self, stream, address) -> None:
        self.streams.add(stream)
        self.active.add(stream)  # a new connection has until the sweep after next to send a request
        super().handle_stream(stream, address)

    async def close_idle(self, every: float) -> None:
        while True:
            await asyncio.sleep(every)
            for stream in list(self.streams):
                if stream not in self.active and not stream.closed():
                    stream.close()
            self.active.clear()


def http_server(gateway: Gateway) -> _Server:
    router = make_app(gateway)
    server = _Server(router, xheaders=False, idle_connection_timeout=IDLE_SWEEP_S, max_body_size=MAX_BODY)
    server.conn_params.header_timeout = None  # the sweep closes idle connections instead
    server.streams = weakref.WeakSet()
    server.active = router.active = weakref.WeakSet()  # the streams that had a request since the last sweep
    return server


async def serve(host: str, port: int, state_dir: Path, secret: str, metrics_token: str = "") -> None:
    gateway = Gateway(state_dir, secret, metrics_token)
    server = http_server(gateway)
    sockets = netutil.bind_sockets(port, host, backlog=1024)
    server.add_sockets(sockets)
    bound = sockets[0].getsockname()[1]
    gateway.watchdog = asyncio.create_task(gateway.watch_memory())
    sweeper = asyncio.create_task(server.close_idle(IDLE_SWEEP_S))
    ready = state_dir / "gateway.json"
    tmp = ready.with_suffix(".tmp")
    # the machine's name too: servers over a team folder on a shared disk use only their own machine's gateway
    tmp.write_text(json.dumps({"port": bound, "host": host, "pid": os.getpid(), "hostname": socket.gethostname()}))
    tmp.replace(ready)
    loop = asyncio.get_running_loop()
    log.info("pai_lab gateway listening on %s:%d (%s)", host, bound, type(loop).__module__)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    server.stop()
    sweeper.cancel()
    await gateway.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pai_lab.serving.gateway")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--state-dir", required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    logging.getLogger("tornado.access").setLevel(logging.ERROR)  # one line per request would cost more than routing
    secret = os.environ.get(SECRET_ENV) or secrets.token_hex(16)
    run = event_loop_runner(os.environ.get(LOOP_ENV, "auto"))
    run(serve(args.host, args.port, Path(args.state_dir), secret, os.environ.get(METRICS_TOKEN_ENV, "")))
    return 0


def event_loop_runner(choice: str):
    """``asyncio.run`` or ``uvloop.run`` for the loop asked for in PAI_LAB_GATEWAY_LOOP: ``auto`` (the
    default) takes uvloop where it is installed, ``uvloop`` insists on it, ``asyncio`` keeps asyncio's own."""
    choice = choice.strip().lower() or "auto"
    if choice not in LOOPS:
        raise SystemExit(f"{LOOP_ENV}={choice!r}: give one of {', '.join(LOOPS)}")
    if choice == "asyncio":
        return asyncio.run
    try:
        import uvloop
    except ImportError:
        if choice == "uvloop":
            raise SystemExit(
                f"{LOOP_ENV}=uvloop but uvloop is not installed: pip install uvloop, or set auto"
            ) from None
        return asyncio.run
    if not hasattr(uvloop, "run"):  # uvloop before 0.18
        uvloop.install()
        return asyncio.run
    return uvloop.run
