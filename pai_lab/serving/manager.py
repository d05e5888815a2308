"""The control plane's side of serving: it starts the gateway process, keeps it alive, and tells
it what should run.

After every change the manager reads the services from the store and pushes the whole desired
state to the gateway (idempotent), so a restarted gateway or control plane converges to the
same services with one push.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import subprocess
import sys
import threading
import time
from pathlib import Path

import requests
from traitlets import Int, Unicode, default
from traitlets.config import LoggingConfigurable

from pai_lab.errors import Unavailable
from pai_lab.serving import shared_gateway

log = logging.getLogger("pai_lab.serving")
SECRET_HEADER = "X-Pai-Lab-Gateway-Secret"
METRICS_TOKEN_ENV = "PAI_LAB_GATEWAY_METRICS_TOKEN"


class ServingManager(LoggingConfigurable):
    """The server's backend for services (``PaiLabApp.serving_manager_class`` names another one);
    configured as ``c.ServingManager.<trait>``, or as ``PaiLabApp.serving_port`` and
    ``PaiLabApp.serving_metrics_token``."""

    port = Int(
        0,
        config=True,
        help="Port of the serving gateway (0: the port the last gateway had, kept in the "
        "state folder, when it is free, else a free port).",
    )
    metrics_token = Unicode(
        config=True,
        help="When set, the serving gateway's /metrics answers only "
        "`Authorization: Bearer <token>`. Default: $PAI_LAB_METRICS_TOKEN, else open.",
    )

    @default("metrics_token")
    def _default_metrics_token(self) -> str:
        return os.environ.get("PAI_LAB_METRICS_TOKEN", "")

    def __init__(self, platform, **kwargs):
        super().__init__(**kwargs)
        self.platform = platform
        self.state_dir = Path(platform.state_dir) / "serving"
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.host = "127.0.0.1"
        # without a configured port, the one the last gateway had is taken again, so the endpoint
        # URLs users hold keep answering after a restart of the control plane
        self._recorded = self._last_gateway()
        self.secret = secrets.token_hex(24)
        self.proc: subprocess.Popen | None = None
        self.url: str | None = None
        self.restarts = 0
        self._lock = threading.RLock()
        self._push_lock = threading.Lock()
        self._closed = False
        self._http = requests.Session()
        self._http.headers[SECRET_HEADER] = self.secret
        self._watcher: threading.Thread | None = None
        self._attached = 0  # the pid of another server's gateway of this folder that this one uses (shared_gateway)

    # ----------------------------------------------------------------- the gateway process

    def ensure_started(self) -> str:
        """The gateway's URL: this server's own, or the one another server over the same folder started
        (``shared_gateway``); starts one when neither runs."""
        with self._lock:
            if self._closed:
                raise Unavailable("the server is shutting down; serving is closed")
            if self.running and self.url:
                return self.url
            with shared_gateway.turn(self.state_dir):
                other = shared_gateway.find(self.state_dir, self.proc.pid if self.proc is not None else 0)
                if other is not None:
                    self._attached, port, secret = other
                    self.url = f"http://{self.host}:{port}"
                    self._http.headers[SECRET_HEADER] = secret
                    log.info("pai_lab: serving through the gateway another server started at %s", self.url)
                else:
                    self._attached = 0
                    self._http.headers[SECRET_HEADER] = self.secret
                    self._start()
                    shared_gateway.keep_secret(self.state_dir, self.secret)
            url = self.url or ""
            if not self._attached:  # the gateway's owner alone autoscales its services
                from pai_lab.serving.autoscaler import autoscaler

                autoscaler(self.platform).ensure_running()
            if self._watcher is None:
                self._watcher = threading.Thread(target=self._watch, name="pai-serving-watch", daemon=True)
                self._watcher.start()
            return url

    def _last_gateway(self) -> dict:
        try:
            info = json.loads((self.state_dir / "gateway.json").read_text())
            return {"port": int(info["port"]), "pid": int(info.get("pid") or 0)}
        except (OSError, ValueError, KeyError, TypeError):
            return {"port": 0, "pid": 0}

    def _wait_for_old_gateway(self) -> None:
        """A gateway left by a killed control plane ends itself within a second or two (it watches
        its parent); its port is wanted again, so wait for it a little."""
        import psutil

        pid = self._recorded.get("pid")
        if not pid or pid == os.getpid():
            return
        try:
            old = psutil.Process(pid)
            if "pai_lab.serving.gateway" not in " ".join(old.cmdline()):
                return
            old.wait(10)
        except (psutil.Error, OSError):
            pass

    def _start(self) -> str:
        ready = self.state_dir / "gateway.json"
        ready.unlink(missing_ok=True)
        env = dict(os.environ, PAI_LAB_GATEWAY_SECRET=self.secret)
        env.pop(METRICS_TOKEN_ENV, None)
        if self.metrics_token:
            env[METRICS_TOKEN_ENV] = self.metrics_token
        log_file = open(self.state_dir / "gateway.log", "ab")  # noqa: SIM115 - the gateway's log: it outlives this call
        # a fixed port, else the one this gateway or the last control plane's had, so endpoints stay the same
        port = self.port or (int(self.url.rsplit(":", 1)[1]) if self.url else self._recorded["port"])
        if port and not self.url and not self.port:
            self._wait_for_old_gateway()
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "pai_lab.serving.gateway",
                "--host",
                self.host,
                "--port",
                str(port),
                "--state-dir",
                str(self.state_dir),
            ],
            stdout=log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
        )
        log_file.close()
        deadline = time.time() + 60
        while time.time() < deadline:
            if self.proc.poll() is not None:
                if port and not self.port:  # the old port was taken meanwhile: take any
                    self.url, self._recorded = None, {"port": 0, "pid": 0}
                    return self._start()
                raise Unavailable(
                    f"the serving gateway exited with {self.proc.returncode}; see {self.state_dir / 'gateway.log'}"
                )
            if ready.exists():
                info = json.loads(ready.read_text())
                self.url = f"http://{self.host}:{info['port']}"
                log.info("pai_lab: serving gateway at %s (pid %s)", self.url, self.proc.pid)
                return self.url
            time.sleep(0.05)
        self.proc.kill()
        raise Unavailable("the serving gateway did not start within 60 s")

    def _watch(self) -> None:
        """Restart the gateway if it dies (this server's own, or the one it shared), and give it the services back."""
        while not self._closed:
            time.sleep(0.5)
            with self._lock:
                if self._closed or self.running or (self.proc is None and not self._attached):
                    continue
                if self._attached:
                    log.warning("pai_lab: the serving gateway of another server ended; taking over")
                elif self.proc is not None:
                    log.warning("pai_lab: the serving gateway exited (%s); restarting it", self.proc.returncode)
                self.restarts += 1
                self.proc, self._attached = None, 0
                try:
                    self.ensure_started()  # the same port, unless another server took over first
                except Exception:
                    log.error("pai_lab: could not restart the serving gateway", exc_info=True)
                    continue
            try:
                self.sync()
            except Exception:
                log.error("pai_lab: could not restore the services", exc_info=True)

    @property
    def running(self) -> bool:
        if self._attached:
            return shared_gateway.alive(self._attached, self.state_dir)
        return self.owns_gateway

    @property
    def owns_gateway(self) -> bool:
        """Whether this server started the gateway that runs (the others attached to it)."""
        return self.proc is not None and self.proc.poll() is None

    def close(self) -> None:
        """Stop this server's gateway; another server's, which this one only used, goes on."""
        with self._lock:
            self._closed = True
            if self.proc is not None and self.proc.poll() is None:
                self.proc.terminate()
                try:
                    self.proc.wait(15)
                except subprocess.TimeoutExpired:
                    self.proc.kill()

    # ----------------------------------------------------------------- state

    def sync(self) -> None:
        """Push what the store says should run; start the gateway if something should."""
        from pai_lab.serving import records
        from pai_lab.serving import sandbox as instance_sandbox
        from pai_lab.serving.placement import placements

        with self._push_lock:
            with self.platform.store.transaction() as session:
                state = records.desired_state(session, placements(session, self.platform))
                state = instance_sandbox.apply(state, instance_sandbox.plan(self.platform, session))
            if not state["services"] and not self.running:
                return
            url = self.ensure_started()
            resp = self._http.put(url + "/_admin/state", data=json.dumps(state), timeout=30)
            resp.raise_for_status()

    def check_sandbox(self, session) -> None:
        """A 409 naming job_sandbox when instances need the sandbox and this machine cannot run it."""
        from pai_lab.serving import sandbox as instance_sandbox

        instance_sandbox.check(self.platform, session)

    def status(self) -> dict:
        """What the gateway reports, per service; empty when it is not running."""
        if not self.running or not self.url:
            return {}
        try:
            resp = self._http.get(self.url + "/_admin/status", timeout=10)
            resp.raise_for_status()
            return resp.json().get("services", {})
        except requests.RequestException:
            return {}

    def delete_instance(self, service_name: str, instance: str) -> bool:
        if not self.running:
            return False
        resp = self._http.delete(f"{self.url}/_admin/instances/{service_name}/{instance}", timeout=10)
        return resp.status_code == 200

    def endpoint(self, path: str) -> str:
        base = self.url or f"http://{self.host}:{self.port or self._recorded['port']}"
        return base + path


def manager(platform) -> ServingManager:
    return platform.manager("serving", ServingManager)
