"""Two `pai server`s over one team folder and one store, as a team's servers under JupyterHub, order the
same image task: its embedding is built once between them (the builder holds a lease in the store; the
other waits for its file), and when the builder is killed mid-build the other takes over, leaving no lease
and no half-written file behind. On a SQLite file, and on PostgreSQL (CI's, else one started here where
it is installed)."""

from __future__ import annotations

import signal
import time

import pytest
from sqlalchemy import create_engine, text

from tests.conftest import start_pai_server
from tests.unit.test_labeling_order_builds import SlowImages


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'team.db'}"
    return request.getfixturevalue("new_postgres_database")()  # CI's server, else a throwaway one (or skipped)


@pytest.fixture
def images():
    slow = SlowImages(delay=0.4, copies=6)
    yield slow
    slow.close()


@pytest.fixture
def servers(tmp_path, store_url, images, monkeypatch):
    monkeypatch.setenv("PAI_LAB_ORDER_EMBEDDING_WAIT", "0.2")  # inherited by the servers' processes
    root = tmp_path / "team"
    extra = ("--database-url", store_url, "--allowed-url-prefix", images.url + "/")
    first = start_pai_server(root, *extra)
    (root / ".pai_lab" / "server.json").unlink()  # the second writes its own: wait for that one
    second = start_pai_server(root, *extra)
    yield first, second
    for server in (first, second):
        server.stop()


def order(ws, task_id: str):
    return ws.http.session.post(
        ws.http.url(f"/workspaces/default/labeling/tasks/{task_id}/order"), json={"by": "typical"}
    )


def ordered(ws, task_id: str, within: float = 180):
    """The order as a user's loop asks for it: again after each 503 "computing"."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        resp = order(ws, task_id)
        if resp.status_code != 503 or resp.json()["error"]["code"] != "computing":
            return resp
        time.sleep(0.1)
    raise AssertionError(f"the order of {task_id} was still computing after {within} s: {resp.text}")


def test_two_servers_build_a_task_embedding_once_and_one_takes_over_when_the_builder_dies(
    servers, images, store_url, tmp_path
):
    first, second = servers
    a, b = first.client().workspace("default"), second.client().workspace("default")
    lines = images.lines()
    paths = list(images.images)

    shared = a.labeling.create_task(
        "shared", "image-classification", labels=["a", "b"], package_size=3, lines=lines[:27]
    )
    assert order(a, shared.id).status_code == 503
    waiting = order(b, shared.id)
    assert waiting.status_code == 503, waiting.text
    assert "by another server over this store" in waiting.json()["error"]["message"]
    for ws in (a, b):
        done = ordered(ws, shared.id)
        assert done.status_code == 200 and done.json()["items"] == 27, done.text
    # one build between the two servers (and the labelers' preview preparation on the first)
    assert max(images.gets[p] for p in paths[:27]) <= 2

    doomed = a.labeling.create_task(
        "doomed", "image-classification", labels=["a", "b"], package_size=3, lines=lines[27:]
    )
    assert order(a, doomed.id).status_code == 503
    assert order(b, doomed.id).status_code == 503
    cache = first.root / ".pai_lab" / "cache" / "embeddings"
    cache.mkdir(parents=True, exist_ok=True)
    (cache / f"{doomed.id}-27.killed.part.npz").write_bytes(b"half")  # as a builder killed mid-write leaves it
    first.proc.send_signal(signal.SIGKILL)
    first.proc.wait(30)
    done = ordered(b, doomed.id)
    assert done.status_code == 200 and done.json()["items"] == 27, done.text
    assert not list(cache.glob("*.part.npz"))
    engine = create_engine(store_url)
    try:
        with engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM label_embedding_builds")).scalar() == 0
    finally:
        engine.dispose()
