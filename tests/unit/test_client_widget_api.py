"""The public client calls the widgets use, against a real `pai server`: a task's REST path as a page
served by the same server asks for it, an item's media cut to a view, and the workspace a task, a job or
a service was read through."""

from __future__ import annotations

import io

import requests
from PIL import Image


def test_a_tasks_api_path_and_media_are_what_the_labeler_page_fetches(live_server, tmp_path, unique_name):
    ws = live_server.client().workspace("default")
    Image.new("RGB", (640, 480), (200, 30, 30)).save(tmp_path / "red.png")
    task = ws.labeling.create_task(
        unique_name("t"),
        "image-classification",
        labels=["red", "blue"],
        lines=[{"data": {"source": str(tmp_path / "red.png")}}],
        labelers=["owner"],
    )
    assert task.workspace is ws

    page = requests.get(
        f"{live_server.url.rstrip('/')}/{task.api_path}",
        headers={"Authorization": f"token {live_server.token}"},
        timeout=30,
    )
    assert page.status_code == 200 and page.json()["id"] == task.id

    package = task.claim()
    seq = task.items(package)[0].seq
    media = task.media(seq, width=64, height=64)
    assert media.mime.startswith("image/") and (media.width, media.height) == (640, 480)
    with Image.open(io.BytesIO(media.content)) as view:
        assert view.width <= 64 and view.height <= 64
    whole = task.media(seq)
    with Image.open(io.BytesIO(whole.content)) as original:
        assert original.size == (640, 480)


def test_a_workspace_api_path_names_the_workspace(live_server):
    ws = live_server.client().workspace("default")
    assert ws.api_path("/jobs") == "pai-lab/api/v1/workspaces/default/jobs"
    listed = requests.get(
        f"{live_server.url.rstrip('/')}/{ws.api_path('/jobs')}",
        headers={"Authorization": f"token {live_server.token}"},
        timeout=30,
    )
    assert listed.status_code == 200 and isinstance(listed.json(), list)
