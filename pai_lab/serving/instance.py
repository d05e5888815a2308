"""One instance of a service: a process that loads the model once and answers the gateway.

    python -m pai_lab.serving.instance SOCKET_PATH CONFIG_JSON

It listens on a Unix socket, takes the gateway's one connection, loads the processor, says
``loaded`` (with the model's signatures) or ``failed``, then runs requests on ``workers``
threads. It exits when the gateway goes away.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import threading
import traceback
from concurrent.futures import ThreadPoolExecutor

from pai_lab.serving import wire


def _run(processor, kind: str, payload):
    from pai_lab.serving.processors import ProcessorError

    try:
        if kind == "process":
            return ("ok", processor.process(payload))
        if kind == "process_batch":
            return ("ok", processor.process_batch(payload))
        return ("ok", processor.predict(payload["signature_name"], payload["inputs"], payload.get("output_filter")))
    except ProcessorError as exc:
        return ("error", (exc.status, exc.message))
    except Exception as exc:  # the model raised: the caller gets the message, the log gets the trace
        traceback.print_exc()
        return ("error", (500, f"{type(exc).__name__}: {exc}"))


def main(argv: list[str]) -> int:
    sock_path, config = argv[0], json.loads(argv[1])
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(sock_path)
    server.listen(1)
    conn, _ = server.accept()
    server.close()
    os.unlink(sock_path)
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)
    reader = conn.makefile("rb", buffering=1 << 16)
    write_lock = threading.Lock()

    def send(message) -> None:
        data = wire.pack(message)
        with write_lock:
            conn.sendall(data)

    try:
        from pai_lab.serving import processors

        processor = processors.load(config)
    except Exception as exc:
        traceback.print_exc()
        send(("failed", f"{type(exc).__name__}: {getattr(exc, 'message', exc)}"))
        return 3
    send(("loaded", {"pid": os.getpid(), "kind": processor.kind, "signatures": processor.signature_json,
                     "default_signature": getattr(processor, "default_signature", None),
                     "batchable": bool(getattr(processor, "batchable", False))}))

    pool = ThreadPoolExecutor(max_workers=int(config.get("workers", 5)), thread_name_prefix="worker")

    def work(request_id, kind, payload):
        status, result = _run(processor, kind, payload)
        try:
            send((request_id, status, result))
        except OSError:
            pass  # the gateway went away

    while True:
        frame = wire.read_frame(reader)
        if frame is None:
            break
        request_id, kind, payload = frame
        pool.submit(work, request_id, kind, payload)
    os._exit(0)  # the gateway is gone; do not wait for worker threads


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
