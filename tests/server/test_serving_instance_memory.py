"""An instance on the gateway's machine that uses more than metadata.memory is killed as OOMKilled and
started again, as in a container; while it restarts it shows no process (the killed one's pid may
already belong to another process) and is not Running."""

from __future__ import annotations

import textwrap
import uuid

import pytest

from pai_lab.client.services import ServiceError
from tests.fixtures.serving import until

GROWING = textwrap.dedent('''
    import json


    class GrowingProcessor:
        """{"grow_mb": n} makes it hold n MiB more (written, so they count in its resident memory)."""

        def initialize(self):
            self.held = []

        def process(self, data):
            request = json.loads(data)
            self.held.append(b"x" * (int(request.get("grow_mb", 0)) << 20))
            return json.dumps({"held_mb": sum(len(b) for b in self.held) >> 20}).encode(), 200
''')


@pytest.fixture(scope="module")
def ws(live_server):
    return live_server.client().workspace("default")


def test_an_instance_above_its_memory_is_oom_killed_and_shows_no_pid_until_it_is_back(ws, tmp_path):
    folder = tmp_path / "growing"
    folder.mkdir()
    (folder / "app.py").write_text(GROWING)
    spec = {
        "name": f"growing_{uuid.uuid4().hex[:8]}",
        "processor_type": "python",
        "processor_path": str(folder),
        "processor_entry": "app.py",
        "metadata": {"instance": 1, "memory": 200},
    }
    svc = ws.services.create(spec, progress=False)
    try:
        (first,) = svc.instances()
        assert first.restarts == 0 and first.pid
        try:  # the watchdog may catch the instance before or after it answers
            assert svc.predict({"grow_mb": 300}) == {"held_mb": 300}
        except ServiceError as refused:
            assert refused.status == 503 and "stopped while handling the request" in str(refused), refused
        seen = []  # each poll reads the instance once

        def back() -> bool:
            (inst,) = svc.instances()
            seen.append(inst)
            return inst.restarts == 1 and inst.ready == "[1/1]"

        until(back, 90)
        again = seen[-1]
        assert again.last_state["reason"] == "OOMKilled" and again.last_state["exitCode"] == 137, again
        assert again.pid and again.pid != first.pid and again.status == "Running"
        restarting = [i for i in seen if i.restarts == 1 and i.ready == "[0/1]"]
        assert all(i.pid != first.pid and i.status != "Running" for i in restarting), restarting
        assert svc.predict({"grow_mb": 1}) == {"held_mb": 1}  # a fresh process: nothing held
    finally:
        svc.delete()
