"""The gateway is supervised: killed, it comes back with its services; after the control plane
restarts, the services that were running run again."""

from __future__ import annotations

import json
import os
import signal

import psutil

from tests.conftest import start_pai_server
from tests.fixtures.serving import until


def _gateway_pid(root) -> int:
    return json.loads((root / ".pai_lab" / "serving" / "gateway.json").read_text())["pid"]


def test_gateway_and_control_plane_restarts_bring_services_back(tmp_path, python_processor):
    root = tmp_path / "root"
    server = start_pai_server(root)
    try:
        ws = server.client().workspace("default")
        svc = ws.services.create(
            {
                "name": "echo",
                "processor_type": "python",
                "processor_path": str(python_processor),
                "processor_entry": "app.py",
                "metadata": {"instance": 1},
            }
        )
        assert svc.predict({"values": [1, 2]}) == {"sum": 3, "n": 2}
        first = _gateway_pid(root)
        instance_pid = svc.instances()[0].pid
        os.kill(first, signal.SIGKILL)
        until(lambda: _gateway_pid(root) != first and svc.refresh().state == "Running")
        assert svc.predict({"values": [4]}) == {"sum": 4, "n": 1}
        assert (
            not psutil.pid_exists(instance_pid)
            or psutil.Process(instance_pid).status() == psutil.STATUS_ZOMBIE
            or until(lambda: not psutil.pid_exists(instance_pid), 20)
        )
        svc.scale(2)
        second = _gateway_pid(root)
    finally:
        server.stop()
    until(lambda: not psutil.pid_exists(second), 30)

    server = start_pai_server(root)
    try:
        svc = server.client().workspace("default").services.get("echo")
        until(lambda: svc.refresh().state == "Running" and svc.info.instances_ready == 2)
        assert svc.predict({"values": [5, 5]}) == {"sum": 10, "n": 2}
    finally:
        server.stop()
