"""A task's image embedding is built outside any store transaction, once per task, in the background: an
order that waits past its deadline is told to ask again (Unavailable, code ``computing``) and the next
one finds the build further on or done. The images come from a real HTTP server on loopback that takes
its time over each one."""

from __future__ import annotations

import io
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from pai_lab.errors import BadInput, Unavailable
from pai_lab.labeling import embeddings
from pai_lab.labeling import schemas as sc
from pai_lab.labeling import service as sv
from tests.unit.test_labeling_ordering import KINDS, shade

W = "default"


class SlowImages:
    """PNG images at ``<url>/<n>.png`` (the shades of the ordering tests, ``copies`` times over), each
    answered after ``delay`` seconds; ``gets`` counts the reads of each."""

    def __init__(self, delay: float, copies: int = 3):
        self.delay = delay
        self.gets: Counter[str] = Counter()
        self.images = {}
        for n in range(len(KINDS) * copies):
            buf = io.BytesIO()
            shade(*KINDS[n % len(KINDS)]).save(buf, "PNG")
            self.images[f"/{n}.png"] = buf.getvalue()
        released = self.released = threading.Event()
        images = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                body = images.images.get(self.path)
                if body is None:
                    self.send_error(404)
                    return
                images.gets[self.path] += 1
                released.wait(images.delay)  # slow, unless the test is over
                self.send_response(200)
                self.send_header("Content-Type", "image/png")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def lines(self) -> list[dict]:
        return [{"data": {"source": f"{self.url}{path}"}} for path in self.images]

    def close(self) -> None:
        self.released.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def slow():
    images = SlowImages(delay=0.3)
    yield images
    images.close()


@pytest.fixture
def platform(tmp_path, slow):
    from pai_lab.labeling import media
    from pai_lab.platform import Platform

    settings = {"preview_prepare_items": 0, "allowed_url_prefixes": [slow.url + "/"]}
    platform = Platform(tmp_path / "root", owner="owner", settings=settings).start()
    yield platform
    embeddings.embeddings(platform).close()
    media.previews(platform).close()
    platform.store.dispose()


def url_task(platform, slow, name="remote") -> str:
    body = sc.TaskCreate(
        name=name, template="image-classification", labels=["a", "b"], package_size=3, lines=slow.lines()
    )
    with platform.store.transaction() as s:
        return sv.create_task(s, "owner", W, body).id


def test_an_order_past_its_deadline_is_told_to_retry_while_one_build_reads_every_image_once(platform, slow):
    task_id = url_task(platform, slow)
    total = len(slow.images)  # 27 images at 0.3 s, 8 at a time: about 1.2 s of reading
    with pytest.raises(Unavailable) as told:
        sv.order_task(platform, "owner", W, task_id, "typical", wait=0.05)
    error = told.value
    assert error.code == "computing" and error.field == "by" and error.retry_after
    assert "computing the image embedding" in error.message and f"of {total} images read" in error.message
    assert error.message.endswith("retry")
    # meanwhile the store is free: another member's write goes through at once
    with platform.store.transaction() as s:
        sv.set_people(s, "owner", W, task_id, sc.TaskPeople(labelers=["owner"]))
    # more requests while it runs, some at the same time: they join the one build
    with ThreadPoolExecutor(4) as pool:
        waits = [pool.submit(sv.order_task, platform, "owner", W, task_id, "typical", wait=0.01) for _ in range(4)]
    for w in waits:
        with pytest.raises(Unavailable):
            w.result()
    done = sv.order_task(platform, "owner", W, task_id, "typical", wait=120)
    assert (done.by, done.packages, done.items) == ("typical", 9, total)
    assert set(slow.gets) == set(slow.images) and max(slow.gets.values()) == 1  # each image read once
    # kept: the next order reads nothing
    sv.order_task(platform, "owner", W, task_id, "cluster_margin", wait=0)
    assert max(slow.gets.values()) == 1


def test_a_build_that_fails_answers_the_request_that_comes_back(platform, slow):
    slow.images = {f"/gone-{n}.png": b"" for n in range(3)}  # listed, but the server answers 404
    lines = slow.lines()
    slow.images = {}
    body = sc.TaskCreate(name="gone", template="image-classification", labels=["a", "b"], lines=lines)
    with platform.store.transaction() as s:
        task_id = sv.create_task(s, "owner", W, body).id
    with pytest.raises((Unavailable, BadInput)):  # told to retry, or already failed
        sv.order_task(platform, "owner", W, task_id, "typical", wait=0)
    with pytest.raises(BadInput) as failed:
        sv.order_task(platform, "owner", W, task_id, "typical", wait=60)
    assert failed.value.field == "by" and "none of the task's images could be read" in failed.value.message


def test_a_member_who_may_not_order_starts_no_build(platform, slow):
    from pai_lab.errors import Forbidden
    from pai_lab.workspaces import service as ws_service

    task_id = url_task(platform, slow, "guarded")
    with platform.store.transaction() as s:
        ws_service.add_member(s, "owner", W, "guest", ["Guest"])
    with pytest.raises(Forbidden):
        sv.order_task(platform, "guest", W, task_id, "typical", wait=0)
    assert not slow.gets and not embeddings.embeddings(platform)._builds


def test_a_build_leased_by_a_server_on_another_host_is_waited_for_until_its_lease_lapses(platform, slow):
    import json
    from datetime import timedelta

    from pai_lab.labeling.tables import EmbeddingBuildRow
    from pai_lab.store import utcnow

    task_id = url_task(platform, slow, "leased")
    elsewhere = json.dumps({"host": "another-host", "pid": 1, "started": 0.0})
    with platform.store.transaction() as s:  # what a teammate's server on another host holds while it builds
        s.add(
            EmbeddingBuildRow(
                task_id=task_id, owner=elsewhere, expires_at=utcnow() + timedelta(minutes=5), read=3, total=27
            )
        )
    with pytest.raises(Unavailable) as told:
        sv.order_task(platform, "owner", W, task_id, "typical", wait=0.5)
    assert "(3 of 27 images read, by another server over this store)" in told.value.message
    assert not slow.gets  # this server reads nothing while the other builds
    with platform.store.transaction() as s:  # that host went down: its lease is no longer renewed
        s.get(EmbeddingBuildRow, task_id).expires_at = utcnow() - timedelta(seconds=1)
    done = sv.order_task(platform, "owner", W, task_id, "typical", wait=120)
    assert (done.items, max(slow.gets.values())) == (27, 1)
    with platform.store.transaction() as s:
        assert s.get(EmbeddingBuildRow, task_id) is None  # released once built
