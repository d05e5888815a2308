"""The gateway is supervised: killed, it comes back with its services; after the control plane
restarts, the services that were running run again."""

from __future__ import annotations

import json
import os
import signal
import time

import psutil

from tests.conftest import start_pai_server


def _gateway_pid(root) -> int:
    return json.loads((root / ".pai_lab" / "serving" / "gateway.json").read_text())["pid"]


def _until(condition, timeout=90):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            value = condition()
            if value:
                return value
        except Exception:  # noqa: BLE001 - the server or gateway is still coming up
            pass
        time.sleep(0.3)
    raise AssertionError("condition not met in time")


def test_gateway_and_control_plane_restarts_bring_services_back(tmp_path, python_processor):
    root = tmp_path / "root"
    server = start_pai_server(root)
    try:
        ws = server.client().workspace("default")
        svc = ws.services.create({"name": "echo", "processor_type": "python", "processor_path": str(python_processor),
                                  "processor_entry": "app.py", "metadata": {"instance": 1}})
        assert svc.predict({"values": [1, 2]}) == {"sum": 3, "n": 2}
        first = _gateway_pid(root)
        instance_pid = svc.instances()[0].pid
        os.kill(first, signal.SIGKILL)
        _until(lambda: _gateway_pid(root) != first and svc.refresh().state == "Running")
        assert svc.predict({"values": [4]}) == {"sum": 4, "n": 1}
        assert not psutil.pid_exists(instance_pid) or psutil.Process(instance_pid).status() == psutil.STATUS_ZOMBIE \
            or _until(lambda: not psutil.pid_exists(instance_pid), 20)
        svc.scale(2)
        second = _gateway_pid(root)
    finally:
        server.stop()
    _until(lambda: not psutil.pid_exists(second), 30)

    server = start_pai_server(root)
    try:
        svc = server.client().workspace("default").services.get("echo")
        _until(lambda: svc.refresh().state == "Running" and svc.info.instances_ready == 2)
        assert svc.predict({"values": [5, 5]}) == {"sum": 10, "n": 2}
    finally:
        server.stop()
