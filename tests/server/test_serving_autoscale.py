"""The autoscaler on a real service: a TensorFlow model under a real load scales up within its policy
and back down once the load stops, with every request answered 200; the policy survives a restart
of the server; `pai eascmd autoscale` names what is wrong with a bad policy."""

from __future__ import annotations

import subprocess
import sys
import threading
import uuid
from collections import Counter

import numpy as np
import pytest
import requests

from tests.conftest import start_pai_server
from tests.fixtures.serving import until

pytestmark = pytest.mark.tf


class PacedLoad:
    """``threads`` callers, each sending one request every ``pause`` seconds until ``stop()``."""

    def __init__(self, url: str, token: str, threads: int, pause: float):
        body = {"inputs": {"images": np.ones((1, 4), dtype=np.float32).tolist()}}  # any body does for a processor
        self.codes: Counter = Counter()
        self._halt = threading.Event()
        self._lock = threading.Lock()

        def run():
            session = requests.Session()
            while not self._halt.is_set():
                try:
                    code = session.post(url, json=body, headers={"Authorization": token}, timeout=60).status_code
                except requests.RequestException as exc:
                    code = type(exc).__name__
                with self._lock:
                    self.codes[code] += 1
                if pause:
                    self._halt.wait(pause)

        self._threads = [threading.Thread(target=run, daemon=True) for _ in range(threads)]
        for t in self._threads:
            t.start()

    def stop(self) -> Counter:
        self._halt.set()
        for t in self._threads:
            t.join(90)
        return self.codes


def eascmd(server, *argv: str) -> subprocess.CompletedProcess:
    env = {**server.env(), "HOME": str(server.root)}
    return subprocess.run(
        [sys.executable, "-m", "pai_lab", "eascmd", *argv], env=env, capture_output=True, text=True, timeout=120
    )


def test_load_scales_a_service_up_and_down_without_a_failed_request_and_the_policy_survives_a_restart(
    tmp_path, saved_model
):
    root = tmp_path / "root"
    server = start_pai_server(root)
    try:
        ws = server.client().workspace("default")
        svc = ws.services.create(
            {
                "name": "auto_tf",
                "model_path": str(saved_model),
                "processor": "tensorflow_cpu_2.7",
                "metadata": {"instance": 1, "cpu": 1},
            },
            progress=False,
            timeout=300,
        )
        done = eascmd(
            server,
            "autoscale",
            "local/auto_tf",
            "-Dmin=1",
            "-Dmax=3",
            "-Dstrategies.qps=2",
            "-Dbehavior.scaleDown.stabilizationWindowSeconds=3",
        )
        assert done.returncode == 0, done.stderr
        assert "[OK] Autoscaler of service [auto_tf] in region [local] is set: 1-3 instances by qps 2" in done.stdout

        # 4 callers, each at most 10 requests a second, against 2 per instance: the rule asks for more than
        # 3 even on a slow machine (above 4 requests a second), the policy allows 3
        load = PacedLoad(svc.endpoint, svc.token, threads=4, pause=0.1)
        try:
            until(lambda: svc.refresh().instances_total == 3 and svc.info.instances_ready == 3, timeout=300)
            scaler = svc.autoscaler
            assert scaler is not None and scaler.info.target == 3
            up = [e for e in scaler.info.events if e.kind == "ScaleUp"]
            assert up and "qps" in up[-1].message and up[-1].from_instances == 1
            assert max(e.to_instances or 0 for e in up) == 3
            shown = scaler._repr_html_()
            assert "target 3 (min 1, max 3)" in shown and "qps 2 per instance" in shown and "ScaleUp" in shown
        finally:
            codes = load.stop()
        sent = sum(codes.values())

        until(lambda: svc.refresh().instances_total == 1 and svc.info.instances_ready == 1, timeout=120)
        assert codes == Counter({200: sent}), codes
        assert sent > 50
        events = svc.autoscaler.info.events
        down = [e for e in events if e.kind == "ScaleDown"]
        assert down and down[0].to_instances == 1 and "threshold 2" in down[0].message
        assert "autoscaler" in svc._repr_html_() and "1-3 instances by qps 2" in svc._repr_html_()
        panel = svc.panel(refresh_seconds=0)
        assert "autoscaled: 1-3 instances by qps 2; 1/1 ready, target 1" in panel.header.value
    finally:
        server.stop()

    server = start_pai_server(root)
    try:
        svc = server.client().workspace("default").services.get("auto_tf")
        until(lambda: svc.refresh().state == "Running" and svc.info.instances_ready == 1, timeout=300)
        done = eascmd(server, "autoscale", "desc", "auto_tf")
        assert done.returncode == 0, done.stderr
        rows = {line.split("|")[1].strip(): line.split("|")[2].strip() for line in done.stdout.splitlines()[3:-1]}
        assert (rows["Min"], rows["Max"], rows["Strategies"]) == ("1", "3", "qps=2")
        assert rows["ScaleDownStabilizationWindow"] == "3s" and "ScaleDown" in rows["LastScale"]
        # the loop watches it again: it reports what it sees of the service
        until(lambda: "qps" in svc.autoscaler.info.metrics, timeout=60)
        done = eascmd(server, "autoscale", "rm", "auto_tf")
        assert done.returncode == 0 and "was removed" in done.stdout, done.stderr
        assert svc.autoscaler is None
    finally:
        server.stop()


def test_bad_autoscale_command_lines_name_the_key(cli, live_server, saved_model):
    ws_name = f"auto{uuid.uuid4().hex[:8]}"
    live_server.client().create_workspace(ws_name)
    ws = live_server.client().workspace(ws_name)
    spec = {"model_path": str(saved_model), "processor": "tensorflow_cpu_2.7", "metadata": {"instance": 0}}
    name = f"auto_{uuid.uuid4().hex[:6]}"
    ws.services.create({"name": name, **spec}, wait=False)
    base = ("eascmd", "-w", ws_name, "autoscale")
    cases = [
        ((name, "-Dmin=0", "-Dmax=2", "-Dstrategies.qps=5"), "min=0", "(field: min)"),
        ((name, "-Dmin=2", "-Dmax=2", "-Dstrategies.qps=5"), "more than min", "(field: max)"),
        ((name, "-Dmin=1", "-Dmax=2", "-Dstrategies.qps=-1"), "above 0", "scaleStrategies.0.threshold"),
        ((name, "-Dmin=1", "-Dmax=2", "-Dstrategies.gpu=5"), "unknown -Dstrategies.gpu", "-Dstrategies.qps="),
        ((name, "-Dmin=one", "-Dmax=2", "-Dstrategies.qps=5"), "-Dmin takes a number", "'one'"),
        ((name, "-Dmin=1", "-Dmax=2"), "-Dstrategies.qps=N", "give"),
        (("desc", name), f"service {name} has no autoscaler", "-Dstrategies.qps=50"),
        (("nowhere", "-Dmin=1", "-Dmax=2", "-Dstrategies.qps=5"), "no service named 'nowhere'", "(field: name)"),
    ]
    for argv, *words in cases:
        rc, out, err = cli(*base, *argv)
        assert rc == 2, (argv, out, err)
        assert all(w in err for w in words), (argv, err)
    rc, out, err = cli(*base, name, "-Dmin=1", "-Dmax=2", "-Dstrategies.cpu=70", "--json")
    assert rc == 0, err
    assert '"metricName": "cpu"' in out and '"threshold": 70.0' in out
    rc, out, err = cli(*base, name, "-Dmin=1", "-Dmax=2", "-Dstrategies.qps=5", user="guest")  # not a member here
    assert rc == 2 and "error:" in err


BURN = """
import time


class Burn:
    def process(self, data):
        end = time.process_time() + 0.02  # 20 ms of one core per request
        while time.process_time() < end:
            pass
        return b'{"ok": true}', 200
"""


def test_cpu_of_the_instances_scales_a_service(live_server, tmp_path):
    (tmp_path / "burn").mkdir()
    (tmp_path / "burn" / "app.py").write_text(BURN)
    ws_name = f"cpu{uuid.uuid4().hex[:8]}"
    live_server.client().create_workspace(ws_name)
    ws = live_server.client().workspace(ws_name)
    name = f"burn_{uuid.uuid4().hex[:6]}"
    svc = ws.services.create(
        {
            "name": name,
            "processor_type": "python",
            "processor_path": str(tmp_path / "burn"),
            "processor_entry": "app.py",
            "metadata": {"instance": 1},
        },
        progress=False,
    )
    scaler = svc.autoscale(1, 2, cpu=30, scale_down_window=2)
    assert scaler.strategies == {"cpu": 30} and scaler.windows() == (0, 2)
    load = PacedLoad(svc.endpoint, svc.token, threads=3, pause=0)
    try:
        until(lambda: svc.refresh().instances_ready == 2, timeout=120)
    finally:
        codes = load.stop()
    assert set(codes) == {200}, codes
    up = next(e for e in svc.autoscaler.info.events if e.kind == "ScaleUp")
    assert up.message.startswith("cpu ") and "% per instance, threshold 30%" in up.message
    until(lambda: svc.refresh().instances_total == 1, timeout=120)
    svc.delete()
