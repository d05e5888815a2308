"""PAI_LAB_GATEWAY_LOOP picks the event loop the gateway process runs on: it serves on each loop, says
which in its log, stops on SIGTERM, and refuses a value it does not know, naming the variable and the
values it takes."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import requests


def start(tmp_path, loop: str) -> subprocess.Popen:
    env = dict(os.environ, PAI_LAB_GATEWAY_LOOP=loop, PAI_LAB_GATEWAY_SECRET="s" * 16)
    return subprocess.Popen(
        [sys.executable, "-m", "pai_lab.serving.gateway", "--state-dir", str(tmp_path)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.parametrize(("loop", "module"), [("asyncio", "asyncio."), ("uvloop", "uvloop"), ("auto", "")])
def test_the_gateway_serves_on_the_loop_asked_for(tmp_path, loop, module):
    if loop == "uvloop":
        pytest.importorskip("uvloop")
    proc = start(tmp_path, loop)
    try:
        ready = tmp_path / "gateway.json"
        deadline = time.monotonic() + 60
        while not ready.exists():
            assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read() if proc.stderr else ""
            time.sleep(0.05)
        port = json.loads(ready.read_text())["port"]
        assert requests.get(f"http://127.0.0.1:{port}/v2/health/live", timeout=10).json() == {"live": True}
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
        log = proc.stderr.read() if proc.stderr else ""
        listening = next(line for line in log.splitlines() if "gateway listening on" in line)
        assert f"({module}" in listening, listening
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_an_unknown_loop_is_refused_with_the_values_it_takes(tmp_path):
    proc = start(tmp_path, "trio")
    assert proc.wait(60) != 0
    err = proc.stderr.read() if proc.stderr else ""
    assert "PAI_LAB_GATEWAY_LOOP='trio'" in err and "auto, uvloop, asyncio" in err, err
    assert not (tmp_path / "gateway.json").exists()
