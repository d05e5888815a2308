"""`pai server` end to end: start it, find it from the runtime file, stop it, file gone."""

import json
import os
import subprocess
import sys

from tests.conftest import start_pai_server


def _pai(*argv, cwd, env=None):
    env = {k: v for k, v in (env or os.environ).items() if not k.startswith("PAI_LAB_")}
    return subprocess.run([sys.executable, "-m", "pai_lab", *argv], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=120)


def test_start_discover_stop(tmp_path):
    root = tmp_path / "root"
    server = start_pai_server(root)
    try:
        info = json.loads(server.runtime_file.read_text())
        assert info["pid"] == server.proc.pid and info["url"].startswith("http://127.0.0.1:")
        assert oct(server.runtime_file.stat().st_mode & 0o777) == "0o600"  # it holds the owner's token
        # no PAI_LAB_URL: the CLI finds the server from <root>/.pai_lab/server.json, from a subfolder too
        (root / "project").mkdir()
        done = _pai("workspace", "ls", "--json", cwd=root / "project")
        assert done.returncode == 0, done.stderr
        spaces = json.loads(done.stdout)
        assert [w["name"] for w in spaces] == ["default"] and spaces[0]["my_roles"] == ["Owner"]
        assert (root / ".pai_lab" / "pai.db").exists()
    finally:
        rc = server.stop()
    assert rc == 0
    assert not server.runtime_file.exists()
    done = _pai("workspace", "ls", cwd=root)
    assert done.returncode == 1
    assert "no pai_lab server found" in done.stderr and "pai server" in done.stderr


def test_restart_keeps_everything(tmp_path):
    root = tmp_path / "root"
    server = start_pai_server(root)
    try:
        client = server.client()
        client.create_workspace("kept_team", "survives restarts").members.add("gina", ["Guest"])
    finally:
        server.stop()
    server = start_pai_server(root)
    try:
        ws = server.client().workspace("kept_team")
        assert ws.info().description == "survives restarts"
        assert "gina" in ws.members
    finally:
        server.stop()
