"""`pai server` end to end: start it, find it from the runtime file, stop it, file gone."""

import json
import os
import subprocess
import sys

from tests.conftest import start_pai_server
from tests.fixtures import postgres
from tests.fixtures.training import wait_for


def _pai(*argv, cwd, env=None):
    env = {k: v for k, v in (env or os.environ).items() if not k.startswith("PAI_LAB_")}
    return subprocess.run(
        [sys.executable, "-m", "pai_lab", *argv], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )


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
        # the store: a SQLite file in the state folder, unless the suite runs on PostgreSQL
        assert (root / ".pai_lab" / "pai.db").exists() == (postgres.STORE == "sqlite")
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


SCRIPT_START = """
import json, sys, pai_lab
ws = pai_lab.connect(start=True)
again = pai_lab.connect(start=True)  # the same process: the same server
ds = ws.datasets.register("digits", "sample://digits")
info = json.load(open(".pai_lab/server.json"))
print(json.dumps({"url": ws.http.info.url, "again": again.http.info.url, "pid": info["pid"],
                  "items": ds.info.item_count, "datasets": [d.name for d in again.datasets.list()]}), flush=True)
sys.stdin.read()  # hold the server until told to go
"""


def _script(code, cwd, tmp_path, **kw):
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAI_LAB_")}
    env["JUPYTER_RUNTIME_DIR"] = str(tmp_path / "no-jupyter")  # no Jupyter server to find either
    return subprocess.Popen(
        [sys.executable, "-c", code],
        cwd=cwd,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kw,
    )


def test_connect_without_server_says_how_to_start_one(tmp_path):
    code = "import pai_lab\ntry:\n    pai_lab.connect()\nexcept Exception as e:\n    print(type(e).__name__, e)"
    out, err = _script(code, tmp_path, tmp_path).communicate(timeout=120)
    assert out.startswith("ServerNotFound no pai_lab server found"), err
    assert "pai_lab.connect(start=True)" in out and "pai server" in out
    assert not (tmp_path / ".pai_lab").exists()  # asking starts nothing


def test_connect_start_runs_a_server_for_the_script_and_stops_it_at_exit(tmp_path):
    import psutil

    folder = tmp_path / "project"
    folder.mkdir()
    first = _script(SCRIPT_START, folder, tmp_path)
    try:
        seen = json.loads(first.stdout.readline() or "null")
        assert seen, first.stderr.read()
        assert seen["again"] == seen["url"] and seen["items"] == 1797 and seen["datasets"] == ["digits"]
        assert psutil.pid_exists(seen["pid"]) and seen["pid"] != first.pid
        # a second script in the same folder reuses that server, and leaves it running when it ends
        second = _script(
            SCRIPT_START.replace("sys.stdin.read()", "").replace(
                'ws.datasets.register("digits", "sample://digits")', 'ws.datasets.get("digits")'
            ),
            folder,
            tmp_path,
        )
        out, err = second.communicate(timeout=120)
        assert second.returncode == 0, err
        assert json.loads(out)["url"] == seen["url"] and "started a pai server" not in err
        assert psutil.pid_exists(seen["pid"])
        out, err = first.communicate("", timeout=120)  # end of input: the first script exits
    finally:
        if first.poll() is None:
            first.kill()
    assert first.returncode == 0, err
    assert "started a pai server for" in err and "connect(start=True)" not in err
    assert not psutil.pid_exists(seen["pid"])
    assert not (folder / ".pai_lab" / "server.json").exists()


def test_a_headless_notebook_starts_its_own_server_and_leaves_none_behind(tmp_path, monkeypatch):
    import nbformat
    import psutil
    from nbclient import NotebookClient

    for key in [k for k in os.environ if k.startswith("PAI_LAB_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(tmp_path / "no-jupyter"))
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell(
            "import json, pai_lab\nws = pai_lab.connect(start=True)\n"
            "print(json.load(open('.pai_lab/server.json'))['pid'])"
        ),
        nbformat.v4.new_code_cell("ws"),
    ]
    NotebookClient(nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    pid = int(next(o for o in nb.cells[0].outputs if o.get("name") == "stdout")["text"])
    shown = nb.cells[1].outputs[0]["data"]["text/html"]
    assert "<b>workspace default</b>" in shown and "<b>0</b> datasets" in shown
    # gone when the kernel shuts down (or, should the kernel be killed on a slow machine, a second later)
    wait_for(lambda: not psutil.pid_exists(pid), 15)
    assert not (tmp_path / ".pai_lab" / "server.json").exists()
