"""Two JupyterLab servers over one team folder and one store (one per user, as under JupyterHub) share one
serving gateway: the second uses the gateway the first started instead of starting a copy of every service,
a change made on either is what the one gateway runs, and when the first stops the second takes the
gateway over on the same port."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import psutil
import requests

from tests.conftest import OWNER, free_port
from tests.fixtures.serving import until

REPO = Path(__file__).resolve().parents[2]


class _Server:
    """A Jupyter server with pai_lab on the team folder ``root``, as a user's server under the Hub."""

    def __init__(self, home: Path, root: Path, name: str):
        home.mkdir(parents=True, exist_ok=True)
        self.token = f"tok-{name}"
        self.url = f"http://127.0.0.1:{free_port()}/"
        argv = [
            sys.executable,
            "-m",
            "jupyter_server",
            f"--ServerApp.root_dir={home}",
            f"--ServerApp.port={self.url.rsplit(':', 1)[1].rstrip('/')}",
            "--ServerApp.open_browser=False",
            "--ServerApp.allow_root=True",
            f"--IdentityProvider.token={self.token}",
            f"--PaiLabApp.root_dir={root}",
            f"--PaiLabApp.owner={OWNER}",
            f"--PaiLabApp.allowed_roots={root.parent}",
        ]
        self.log = home / "server.log"
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(argv, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        until(self._up, 120)

    def _up(self) -> bool:
        assert self.proc.poll() is None, self.log.read_text()[-3000:]
        try:
            me = requests.get(
                self.url + "pai-lab/api/v1/me", headers={"Authorization": f"token {self.token}"}, timeout=5
            )
        except requests.RequestException:
            return False
        return me.status_code == 200

    def workspace(self):
        from pai_lab.client import PaiClient

        return PaiClient(self.url, self.token).workspace("default")

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)


def _gateways(state: Path) -> list[int]:
    """The live serving gateway processes of this team folder."""
    found = []
    for proc in psutil.process_iter(["cmdline", "status"]):
        command = proc.info["cmdline"] or []
        if "pai_lab.serving.gateway" in command and str(state) in command and proc.info["status"] != "zombie":
            found.append(proc.pid)
    return found


def _recorded(state: Path) -> dict:
    return json.loads((state / "gateway.json").read_text())


def test_two_servers_over_one_team_folder_share_one_serving_gateway(tmp_path, python_processor):
    team = tmp_path / "team"
    state = team / ".pai_lab" / "serving"
    processor = tmp_path / "processor"
    processor.mkdir()
    (processor / "app.py").write_text((python_processor / "app.py").read_text())
    ana = _Server(tmp_path / "home" / "ana", team, "ana")
    lia = None
    try:
        svc = ana.workspace().services.create(
            {
                "name": "echo",
                "processor_type": "python",
                "processor_path": str(processor),
                "processor_entry": "app.py",
                "metadata": {"instance": 1},
            }
        )
        assert svc.predict({"values": [1, 2]}) == {"sum": 3, "n": 2}
        first = _recorded(state)
        assert _gateways(state) == [first["pid"]]

        # a teammate's server starts on the same folder and store: it serves through the same gateway
        lia = _Server(tmp_path / "home" / "lia", team, "lia")
        theirs = lia.workspace().services.get("echo")
        until(lambda: theirs.refresh().state == "Running", 60)
        assert theirs.info.endpoint == svc.refresh().endpoint
        assert theirs.predict({"values": [4]}) == {"sum": 4, "n": 1}
        assert _gateways(state) == [first["pid"]] and _recorded(state) == first
        # a change made on the second server is what the one gateway runs, and the first sees it
        theirs.scale(2)
        until(lambda: svc.refresh().instances_ready == 2 and len(svc.instances()) == 2, 90)
        assert _gateways(state) == [first["pid"]]

        # the first server stops, and its gateway with it: the second takes over on the same port
        ana.stop()
        until(lambda: _gateways(state) and _gateways(state) != [first["pid"]], 60)
        until(lambda: theirs.refresh().state == "Running" and theirs.info.instances_ready == 2, 90)
        assert theirs.info.endpoint == svc.info.endpoint  # the URLs users hold keep answering
        assert theirs.predict({"values": [5, 5]}) == {"sum": 10, "n": 2}
        assert _recorded(state)["port"] == first["port"] and len(_gateways(state)) == 1
    finally:
        ana.stop()
        if lia is not None:
            lia.stop()
    until(lambda: not _gateways(state), 30)
