"""The deploy race and waiting through restarts (issue 13): an instance is announced only once it
listens and has loaded its model; `Service.wait` waits through crashes and failed starts until its
timeout, and ends early only on a failure that restarting cannot heal.

The server here runs with every Unix socket slowed by a second between bind and listen (a
`sitecustomize` on its PYTHONPATH, as a loaded machine would slow it), which made the first
deploy fail with `Connection refused` when the gateway connected as soon as the socket's file
appeared."""

from __future__ import annotations

import os
import signal
import textwrap
import time

import pytest

from pai_lab.errors import Unavailable
from tests.conftest import start_pai_server
from tests.fixtures.serving import until

SLOW_LISTEN = textwrap.dedent("""
    import os, socket, time

    _listen = socket.socket.listen

    def listen(self, *args):
        if self.family == socket.AF_UNIX:
            time.sleep(float(os.environ.get("PAI_TEST_SLOW_LISTEN", "0")))
        return _listen(self, *args)

    socket.socket.listen = listen
""")

FLAKY = textwrap.dedent('''
    import os


    class FlakyProcessor:
        """Fails its first start (as a model store that is not reachable yet would), then works."""

        def initialize(self):
            marker = os.path.join(os.path.dirname(os.path.abspath(__file__)), "tried_once")
            if not os.path.exists(marker):
                open(marker, "w").close()
                raise RuntimeError("the model store is not reachable yet")

        def process(self, data):
            return data
''')

BROKEN = "import a_module_that_does_not_exist_anywhere\n\n\ndef process(data):\n    return data\n"


def _processor(tmp_path, name: str, source: str) -> dict:
    folder = tmp_path / name
    folder.mkdir()
    (folder / "app.py").write_text(source)
    return {
        "name": name,
        "processor_type": "python",
        "processor_path": str(folder),
        "processor_entry": "app.py",
        "metadata": {"instance": 1},
    }


@pytest.fixture
def slow_server(tmp_path, monkeypatch, python_processor):
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    (hooks / "sitecustomize.py").write_text(SLOW_LISTEN)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(hooks), os.environ.get("PYTHONPATH")])))
    monkeypatch.setenv("PAI_TEST_SLOW_LISTEN", "1.0")
    server = start_pai_server(tmp_path / "root")
    yield server
    server.stop()


def test_an_instance_slow_to_listen_is_announced_only_once_it_listens(slow_server, python_processor, tmp_path, capsys):
    ws = slow_server.client().workspace("default")
    spec = _processor(tmp_path, "echo", (python_processor / "app.py").read_text())
    svc = ws.services.create(spec)  # waits for Running, showing the instances ready
    assert "echo: 1/1 instances ready" in capsys.readouterr().err
    assert svc.predict({"values": [1, 2]}) == {"sum": 3, "n": 2}  # at once, no retry
    (inst,) = svc.instances()
    assert inst.restarts == 0 and inst.status == "Running", inst  # no start failed on the way

    # an instance killed under it comes back under the same name; wait() waits for it
    os.kill(inst.pid, signal.SIGKILL)
    until(lambda: svc.instances()[0].restarts == 1)
    svc.wait(timeout=60, progress=False)
    assert "instances ready" not in capsys.readouterr().err
    (again,) = svc.instances()
    assert again.name == inst.name and again.pid != inst.pid and again.status == "Running"
    assert again.last_state["exitCode"] == 137
    assert svc.predict({"values": [4]}) == {"sum": 4, "n": 1}


def test_wait_goes_through_a_failed_start_but_not_a_failure_that_cannot_heal(slow_server, tmp_path):
    ws = slow_server.client().workspace("default")
    flaky = ws.services.create(_processor(tmp_path, "flaky", FLAKY), progress=False)
    (inst,) = flaky.instances()
    assert inst.restarts == 1 and inst.status == "Running" and inst.last_state["reason"] == "StartError"
    assert flaky.predict({"ok": 1}) == {"ok": 1}

    started = time.monotonic()
    with pytest.raises(Unavailable) as err:
        ws.services.create(_processor(tmp_path, "broken", BROKEN), timeout=120, progress=False)
    assert "a_module_that_does_not_exist_anywhere" in str(err.value)
    assert time.monotonic() - started < 60  # ended by the failure, not by the timeout
    broken = ws.services.get("broken")
    assert broken.info.state == "Failed" and broken.info.fatal

    # a new version that cannot load ends the wait too, while the old version goes on serving
    flaky.modify({"processor_path": str(tmp_path / "broken"), "processor_entry": "app.py"})
    started = time.monotonic()
    with pytest.raises(Unavailable) as err:
        flaky.wait(timeout=120, progress=False)
    assert "a_module_that_does_not_exist_anywhere" in str(err.value) and time.monotonic() - started < 60
    assert flaky.info.state == "HotUpdate" and flaky.predict({"still": "served"}) == {"still": "served"}
