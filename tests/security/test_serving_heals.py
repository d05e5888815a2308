"""Serving heals (issue 14): a killed instance under load answers 200 again within seconds and
the requests it held fail at once with 503 instead of waiting for 408; endpoints keep their port
across a control-plane restart; signed EAS requests carry a Date within 15 minutes; /metrics can
require a token."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import shutil
import signal
import threading
import time
import uuid
from collections import Counter
from email.utils import formatdate

import numpy as np
import pytest
import requests

from tests.conftest import start_pai_server
from tests.fixtures.serving import until

KEEPALIVE_MS = 30_000  # a request that waited for 408 would take this long: far beyond what we allow


@pytest.fixture(scope="module")
def ws(live_server):
    return live_server.client().workspace("default")


@pytest.fixture(scope="module")
def inside(live_server, python_processor, saved_model):
    """The processor and the model copied under the server's root, where services may read them."""
    folder = live_server.root / f"heals_{uuid.uuid4().hex[:6]}"
    shutil.copytree(python_processor, folder / "processor")
    shutil.copytree(saved_model, folder / "model")
    return folder


class Clients:
    """``n`` clients posting without pause until stopped; every answer as (sent, answered, status)."""

    def __init__(self, url: str, body: bytes, token: str, n: int = 8):
        self.answers: list[tuple[float, float, object]] = []
        self._halt = threading.Event()
        self._lock = threading.Lock()

        def run():
            session = requests.Session()
            while not self._halt.is_set():
                sent = time.monotonic()
                try:
                    code = session.post(url, data=body, headers={"Authorization": token}, timeout=60).status_code
                except requests.RequestException:
                    code = "connection error"
                with self._lock:
                    self.answers.append((sent, time.monotonic(), code))
                if code == 503:
                    time.sleep(0.1)  # as a client retrying a refusal would: no busy loop on 2 cores

        self._threads = [threading.Thread(target=run, daemon=True) for _ in range(n)]
        for t in self._threads:
            t.start()

    def since(self, t: float) -> list[tuple[float, float, object]]:
        with self._lock:
            return [a for a in self.answers if a[0] >= t]

    def stop(self) -> list[tuple[float, float, object]]:
        self._halt.set()
        for t in self._threads:
            t.join(70)
        return self.answers


@pytest.mark.parametrize("processor", ["python", "tensorflow"])
def test_a_killed_instance_under_load_answers_again_and_its_queue_fails_fast(ws, processor, inside):
    rpc = {"max_queue_size": 4, "keepalive": KEEPALIVE_MS}
    name = f"heal_{processor[:2]}_{uuid.uuid4().hex[:6]}"
    if processor == "python":
        spec = {
            "name": name,
            "processor_type": "python",
            "processor_path": str(inside / "processor"),
            "processor_entry": "app.py",
            "metadata": {"instance": 1, "workers": 1, "rpc": rpc},
        }
        body = json.dumps({"values": [1, 2], "sleep": 0.05}).encode()
        restart_allowance = 15
    else:
        spec = {
            "name": name,
            "model_path": str(inside / "model"),
            "processor": "tensorflow_cpu_2.7",
            "metadata": {"instance": 1, "workers": 1, "rpc": rpc},
        }
        body = json.dumps({"inputs": {"images": np.ones((64, 4)).tolist()}}).encode()
        restart_allowance = 45  # the new instance imports TensorFlow again (15-35 s on a busy 2-core machine)
    svc = ws.services.create(spec)
    try:
        (first,) = svc.instances()
        clients = Clients(svc.endpoint, body, svc.token, n=8)
        try:
            until(lambda: sum(1 for a in clients.answers if a[2] == 200) >= 20, 30)
            killed_at = time.monotonic()
            os.kill(first.pid, signal.SIGKILL)
            # 200s again: a request sent after the kill is answered 200
            until(lambda: any(a[2] == 200 for a in clients.since(killed_at)), restart_allowance)
            healed_at = min(a[0] for a in clients.since(killed_at) if a[2] == 200)
            time.sleep(2)
            answers = clients.stop()
        finally:
            clients.stop()
        held = [a for a in answers if a[0] < killed_at < a[1]]  # queued or in flight at the kill
        assert held and all(a[2] in (200, 450, 503) for a in held), held
        assert max(a[1] for a in held) - killed_at < 5, "requests held at the kill must fail at once, not wait"
        codes = Counter(a[2] for a in answers)
        print(
            f"{processor}: {len(answers)} requests, 1 SIGKILL, {len(held)} held at the kill "
            f"(answered within {max(a[1] for a in held) - killed_at:.2f} s), 200 again after "
            f"{healed_at - killed_at:.1f} s, codes {dict(codes)}"
        )  # the figures docs/security.md records
        assert 408 not in codes and "connection error" not in codes, codes
        assert healed_at - killed_at < restart_allowance
        # healed for good: after the first 200 the service keeps answering (450 only while the queue is full)
        later = Counter(a[2] for a in answers if a[0] > healed_at + 0.5)
        assert later[200] > 0 and set(later) <= {200, 450}, later
        (again,) = svc.instances()
        assert again.pid != first.pid and again.ready == "[1/1]" and again.restarts == 1
    finally:
        svc.delete()


def _signed(token: str, path: str, body: bytes, date: str | None) -> dict:
    """Headers as the official eas-prediction client signs them (HMAC-SHA1 keyed by the token)."""
    md5 = hashlib.md5(body).hexdigest()
    ctype = "application/octet-stream"
    text = f"POST\n{md5}\n{ctype}\n{date or ''}\n{path}".strip()
    signature = base64.b64encode(hmac.new(token.encode(), text.encode(), hashlib.sha1).digest()).decode()
    headers = {"Content-MD5": md5, "Content-Type": ctype, "Authorization": f"EAS {signature}"}
    if date is not None:
        headers["Date"] = date
    return headers


@pytest.fixture(scope="module")
def echo(ws, inside):
    svc = ws.services.create(
        {
            "name": f"signed_{uuid.uuid4().hex[:6]}",
            "processor_type": "python",
            "processor_path": str(inside / "processor"),
            "processor_entry": "app.py",
            "metadata": {"instance": 1},
        }
    )
    yield svc
    svc.delete()


@pytest.mark.parametrize(
    "date, code",
    [
        ("now", 200),
        ("Mon, 01 Jan 2001 00:00:00 GMT", 401),  # a 2001 date
        (None, 401),  # no Date at all
        ("not a date", 401),  # garbage
        ("16 minutes ago", 401),  # a captured request replayed outside the window
        ("16 minutes ahead", 401),
        ("14 minutes ago", 200),  # clocks may differ within the window
    ],
)
def test_signed_requests_carry_a_date_within_15_minutes(echo, date, code):
    body = json.dumps({"values": [2, 3]}).encode()
    offsets = {"now": 0, "16 minutes ago": -16 * 60, "16 minutes ahead": 16 * 60, "14 minutes ago": -14 * 60}
    if date in offsets:
        date = formatdate(time.time() + offsets[date], usegmt=True)
    path = "/api/predict/" + echo.name
    answer = requests.post(echo.endpoint, data=body, headers=_signed(echo.token, path, body, date), timeout=30)
    assert answer.status_code == code, answer.text
    if code == 200:
        assert answer.json() == {"sum": 5, "n": 2}
    else:
        assert "Date" in answer.text


def test_a_signature_with_a_current_date_and_another_token_is_refused(echo):
    body = json.dumps({"values": [1]}).encode()
    headers = _signed("not-the-token", "/api/predict/" + echo.name, body, formatdate(usegmt=True))
    answer = requests.post(echo.endpoint, data=body, headers=headers, timeout=30)
    assert answer.status_code == 401 and "signature" in answer.text


def test_endpoints_keep_their_port_across_restarts_and_a_crash_and_metrics_want_their_token(
    tmp_path, python_processor, monkeypatch
):
    monkeypatch.setenv("PAI_LAB_METRICS_TOKEN", "scrape-" + uuid.uuid4().hex[:8])
    root = tmp_path / "root"
    shutil.copytree(python_processor, root / "processor")
    server = start_pai_server(root)
    try:
        svc = (
            server.client()
            .workspace("default")
            .services.create(
                {
                    "name": "stable",
                    "processor_type": "python",
                    "processor_path": str(root / "processor"),
                    "processor_entry": "app.py",
                    "metadata": {"instance": 1},
                }
            )
        )
        endpoint, token = svc.endpoint, svc.token
        assert requests.post(endpoint, json={"values": [1]}, headers={"Authorization": token}).json()["sum"] == 1
        metrics = endpoint.split("/api/predict/")[0] + "/metrics"
        assert requests.get(metrics, timeout=10).status_code == 401
        assert requests.get(metrics, headers={"Authorization": "Bearer wrong"}, timeout=10).status_code == 401
        scraped = requests.get(
            metrics, headers={"Authorization": "Bearer " + os.environ["PAI_LAB_METRICS_TOKEN"]}, timeout=10
        )
        assert scraped.status_code == 200 and "pai_serving_requests" in scraped.text
    finally:
        server.stop()

    def refused() -> bool:  # the gateway ends with its control plane
        try:
            requests.post(endpoint, data=b"{}", timeout=2)
        except requests.ConnectionError:
            return True
        return False

    until(refused, 20)

    server = start_pai_server(root)
    try:
        # the URL a user held before the restart answers again, with the same token
        answer = until(
            lambda: requests.post(endpoint, json={"values": [2, 2]}, headers={"Authorization": token}, timeout=10), 90
        )
        assert answer.status_code == 200 and answer.json() == {"sum": 4, "n": 2}
        assert server.client().workspace("default").services.get("stable").endpoint == endpoint
        server.proc.kill()  # a crash: its gateway ends itself when it sees its parent gone
        server.proc.wait(10)
    finally:
        server.stop()

    server = start_pai_server(root)
    try:
        answer = until(
            lambda: requests.post(endpoint, json={"values": [3]}, headers={"Authorization": token}, timeout=10), 90
        )
        assert answer.status_code == 200 and answer.json() == {"sum": 3, "n": 1}
    finally:
        server.stop()
