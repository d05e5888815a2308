"""One instance of a service: a process that loads the model once and answers the gateway.

    python -m pai_lab.serving.instance SOCKET_PATH CONFIG_JSON

It listens on a Unix socket, takes the gateway's one connection, loads the processor, says
``loaded`` (with the model's signatures) or ``failed`` (with whether retrying can help), then
runs requests on ``workers`` threads. It exits when the gateway goes away.

The socket appears at SOCKET_PATH only once it listens (bound under a temporary name, then
renamed), so the gateway never connects to a socket that would refuse it.

On a Dask worker (:mod:`pai_lab.serving.worker_task`) the first argument is ``fd:N``: a TCP socket
the worker bound and handed over. There each connection is challenged before any frame is read: the
instance sends a fresh random nonce and the gateway must answer HMAC-SHA256 of it keyed with the
instance's connection token (``PAI_LAB_INSTANCE_TOKEN``), so nobody else on the network can drive it,
and what a listener sees of one exchange answers no other nonce; a connection that fails is dropped
and the next one waited for. Such an instance dies with the worker that started it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import pickle
import re
import secrets
import socket
import sys
import threading
import time
import traceback

from pai_lab.serving import wire

# TensorFlow's native start-up lines, written before it reads TF_CPP_MIN_LOG_LEVEL (absl logs them
# anyway): oneDNN and CPU-feature notes, the CUDA stubs of a CPU machine, and cuInit failing there.
_NATIVE_NOISE = re.compile(
    rb"^(WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"
    rb"|To enable the following instructions: .*rebuild TensorFlow with the appropriate compiler flags\."
    rb"|[IW]\d{4} [\d:. ]+\d+ \S+\.cc:\d+\] .*"
    rb"|E\d{4} [\d:. ]+\d+ cuda_\w+\.cc:\d+\] (failed call to cuInit|Unable to register).*)$"
)


def _quiet_native_logs() -> None:
    """Drop TensorFlow's C++ start-up noise from this process's stderr (the instance log) when
    TF_CPP_MIN_LOG_LEVEL asks for warnings and info to be hidden (the gateway sets 2 unless the
    server's environment sets it); everything else, Python tracebacks included, passes through."""
    try:
        level = int(os.environ.get("TF_CPP_MIN_LOG_LEVEL", "0"))
    except ValueError:
        level = 0
    if level < 2:
        return
    global _restore_stderr
    read_fd, write_fd = os.pipe()
    target = os.dup(2)
    os.dup2(write_fd, 2)
    os.close(write_fd)
    sys.stderr = os.fdopen(2, "w", buffering=1, closefd=False)

    def pump():
        with os.fdopen(read_fd, "rb", buffering=0) as pipe:
            pending = b""
            while chunk := pipe.read(65536):
                pending += chunk
                *lines, pending = pending.split(b"\n")
                kept = b"".join(line + b"\n" for line in lines if not _NATIVE_NOISE.match(line))
                if kept:
                    os.write(target, kept)
            if pending:
                os.write(target, pending)

    thread = threading.Thread(target=pump, name="stderr-filter", daemon=True)
    thread.start()

    def restore():
        sys.stderr.flush()
        os.dup2(target, 2)  # the pipe's last writer closes: the pump writes what is left and ends
        thread.join(2)

    _restore_stderr = restore


_restore_stderr = None
ACCEPT_TIMEOUT_S = 120.0
TOKEN_TIMEOUT_S = 10.0
CHALLENGE_BYTES = 32  # the nonce; the answer is an HMAC-SHA256 digest, as long


def _flush_logs() -> None:
    if _restore_stderr is not None:
        _restore_stderr()


def _fatal(exc: BaseException) -> bool:
    """A load failure that restarting cannot heal: the processor or model is wrong, not the moment."""
    from pai_lab.serving.processors import ProcessorError

    if isinstance(exc, (ProcessorError, FileNotFoundError, NotADirectoryError, ImportError, SyntaxError)):
        return True
    return isinstance(exc, OSError) and "does not exist" in str(exc)  # tf.saved_model.load on a missing folder


def _listen(sock_path: str) -> socket.socket:
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    tmp = sock_path + ".tmp"
    server.bind(tmp)
    server.listen(1)
    os.rename(tmp, sock_path)  # the gateway waits for this name: it exists only once we listen
    return server


def _accept_with_token(server: socket.socket, token: bytes) -> socket.socket:
    """The first connection that answers a fresh nonce with its HMAC-SHA256 under ``token``; others are
    dropped unread. Ends the process when nobody connects within ACCEPT_TIMEOUT_S (the gateway gave up
    on this launch)."""
    server.settimeout(ACCEPT_TIMEOUT_S)
    while True:
        try:
            conn, _ = server.accept()
        except TimeoutError:
            print("no gateway connected; exiting", file=sys.stderr)
            os._exit(4)
        conn.settimeout(TOKEN_TIMEOUT_S)
        nonce = secrets.token_bytes(CHALLENGE_BYTES)
        expected = hmac.new(token, nonce, hashlib.sha256).digest()
        got = b""
        try:
            conn.sendall(nonce)
            while len(got) < len(expected):
                chunk = conn.recv(len(expected) - len(got))
                if not chunk:
                    break
                got += chunk
        except OSError:
            pass
        if token and hmac.compare_digest(got, expected):
            conn.settimeout(None)
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            return conn
        conn.close()


def _die_with_parent() -> None:
    """On a worker: end with the worker process that started this instance."""
    from pai_lab.serving.worker_task import PARENT_ENV

    # in a sandbox its parent is bubblewrap's own, which ends with the worker
    parent = int(os.environ.pop(PARENT_ENV, "0") or 0) or os.getppid()
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, 9, 0, 0, 0)  # PR_SET_PDEATHSIG, SIGKILL
    except (OSError, AttributeError):  # not Linux: the watcher below alone
        pass

    def watch():
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def _connect(where: str) -> socket.socket:
    """The gateway's one connection: on the Unix socket path, or on the handed-over TCP socket ``fd:N``."""
    if not where.startswith("fd:"):
        server = _listen(where)
        conn, _ = server.accept()
        server.close()
        os.unlink(where)
        return conn
    from pai_lab.serving.worker_task import TOKEN_ENV

    _die_with_parent()
    server = socket.socket(fileno=int(where[3:]))
    conn = _accept_with_token(server, os.environ.pop(TOKEN_ENV, "").encode())
    server.close()
    return conn


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
    except Exception as exc:  # noqa: BLE001 - the model raised: the caller gets the message, the log gets the trace
        traceback.print_exc()
        return ("error", (500, f"{type(exc).__name__}: {exc}"))


def main(argv: list[str]) -> int:
    sock_path, config = argv[0], json.loads(argv[1])
    _quiet_native_logs()
    conn = _connect(sock_path)
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)
    reader = conn.makefile("rb", buffering=1 << 16)
    write_lock = threading.Lock()

    def send(message) -> None:
        parts = wire.pack_parts(message)
        with write_lock:
            wire.send_parts(conn, parts)

    try:
        from pai_lab.serving import processors

        processor = processors.load(config)
    except Exception as exc:  # noqa: BLE001 - any failure to load is the instance's answer
        traceback.print_exc()
        _flush_logs()
        send(("failed", {"message": f"{type(exc).__name__}: {getattr(exc, 'message', exc)}", "fatal": _fatal(exc)}))
        return 3
    send(
        (
            "loaded",
            {
                "pid": os.getpid(),
                "kind": processor.kind,
                "signatures": processor.signature_json,
                "default_signature": getattr(processor, "default_signature", None),
                "batchable": bool(getattr(processor, "batchable", False)),
                "takes_body": bool(getattr(processor, "takes_body", False)),
            },
        )
    )

    read_lock = threading.Lock()
    ended = threading.Event()

    def serve() -> None:
        # Each worker thread takes its own requests off the connection (one reads while the others
        # run theirs): no hand-over from a reading thread to a pool, so an idle instance starts a
        # request in the thread that read it. The gateway sends at most `workers` at a time.
        while not ended.is_set():
            with read_lock:
                try:
                    frame = wire.read_frame(reader)
                except (OSError, ValueError, pickle.UnpicklingError):
                    frame = None
            if frame is None:
                break
            request_id, kind, payload = frame
            status, result = _run(processor, kind, payload)
            try:
                try:
                    send((request_id, status, result))
                except (pickle.PicklingError, TypeError, AttributeError) as exc:
                    send((request_id, "error", (500, f"the answer cannot be sent back: {type(exc).__name__}: {exc}")))
            except OSError:
                break  # the gateway went away
        ended.set()

    for i in range(max(1, int(config.get("workers", 5)))):
        threading.Thread(target=serve, name=f"worker-{i}", daemon=True).start()
    ended.wait()
    _flush_logs()
    os._exit(0)  # the gateway is gone; do not wait for worker threads


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
