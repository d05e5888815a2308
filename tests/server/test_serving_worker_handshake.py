"""The connection to an instance on a resource group's worker: the instance listens on TCP, so before any
frame is read it sends a fresh nonce and takes only the HMAC-SHA256 of it under its per-start token. The token
itself (what the gateway once sent) and an answer recorded from an earlier exchange open nothing, nothing a
stranger sends is unpickled, and once its gateway is connected the instance listens no more."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ECHO = """
import json


class Echo:
    def process(self, data):
        return json.dumps({"sum": sum(json.loads(data)["values"])}).encode(), 200
"""


class _Opens:
    """A pickle that, if ever unpickled, creates the file it names."""

    def __init__(self, path: Path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_an_instance_on_a_worker_answers_only_its_tokens_challenge_and_then_nobody_else(tmp_path):
    import socket

    from pai_lab.serving import wire
    from pai_lab.serving.gateway.worker_instances import answer
    from pai_lab.serving.worker_task import PARENT_ENV, TOKEN_ENV

    folder = tmp_path / "echo"
    folder.mkdir()
    (folder / "app.py").write_text(ECHO)
    config = {"processor_kind": "python", "processor_dir": str(folder), "processor_entry": "app.py"}
    config["processor_mainclass"] = "Echo"
    listener = socket.create_server(("127.0.0.1", 0))
    port, token = listener.getsockname()[1], "t" * 64
    env = {**os.environ, TOKEN_ENV: token, PARENT_ENV: str(os.getpid())}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(Path(__file__).resolve().parents[2]), env.get("PYTHONPATH")]))
    argv = [sys.executable, "-m", "pai_lab.serving.instance", f"fd:{listener.fileno()}", json.dumps(config)]
    proc = subprocess.Popen(argv, env=env, pass_fds=(listener.fileno(),))
    listener.close()
    marker = tmp_path / "unpickled"

    def _dropped(conn: socket.socket) -> None:
        try:
            assert conn.recv(1024) == b""  # dropped unread
        except ConnectionResetError:
            pass  # dropped with its frame unread: the peer resets

    def _challenge(conn: socket.socket) -> bytes:
        nonce = b""
        while len(nonce) < 32:
            chunk = conn.recv(32 - len(nonce))
            assert chunk, "the instance closed before its challenge"
            nonce += chunk
        return nonce

    try:
        with socket.create_connection(("127.0.0.1", port), timeout=30) as stranger:
            first = _challenge(stranger)
            # the token itself (what the gateway sent before) opens nothing now
            stranger.sendall(token.encode() + wire.pack((1, "process", _Opens(marker))))
            _dropped(stranger)
        # a listener who saw a right answer to one nonce replays it: the next connection has its own nonce
        captured = answer(token, first)
        with socket.create_connection(("127.0.0.1", port), timeout=30) as replay:
            second = _challenge(replay)
            assert second != first
            replay.sendall(captured + wire.pack((1, "process", _Opens(marker))))
            _dropped(replay)
        assert not marker.exists()
        with socket.create_connection(("127.0.0.1", port), timeout=60) as gateway:
            mine = answer(token, _challenge(gateway))
            assert token.encode() not in mine and mine != captured
            gateway.sendall(mine)
            kind, info = wire.read_frame(gateway.makefile("rb"))
            assert kind == "loaded" and info["pid"] == proc.pid
            # once its gateway is connected the instance listens no more
            with pytest.raises(ConnectionRefusedError):
                socket.create_connection(("127.0.0.1", port), timeout=10)
        assert proc.wait(30) == 0  # the gateway went away: so does the instance
    finally:
        proc.kill()
        proc.wait(10)
