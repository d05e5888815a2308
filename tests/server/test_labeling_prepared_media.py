"""Through the REST API: creating a task prepares its first images, claiming a package prepares
that package's, and the media route then serves views cut from the prepared copies."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from pai_lab.labeling import media

W = "/workspaces/default/labeling"


@pytest.fixture
def jp_server_config(jp_server_config):
    # prepare only the first two images when the task is created; the rest wait for a claim
    config = {**jp_server_config, "PaiLabApp": {**jp_server_config["PaiLabApp"], "preview_prepare_items": 2}}
    return config


async def test_create_and_claim_prepare_images_that_views_are_cut_from(api, jp_serverapp, pai_root):
    folder = pai_root / "shots"
    folder.mkdir()
    for i in range(6):
        Image.new("RGB", (1024, 768), (40 * i, 90, 160)).save(folder / f"{i}.png")
    lines = [{"data": {"source": f"shots/{i}.png"}} for i in range(6)]
    status, task = await api(
        "POST",
        f"{W}/tasks",
        {
            "name": "shots",
            "template": "image-classification",
            "labels": ["a", "b"],
            "lines": lines,
            "package_size": 3,
            "labelers": ["owner"],
        },
    )
    assert status == 201, task
    previews = media.previews(jp_serverapp.web_app.settings["pai_lab_platform"])
    assert previews.idle(60) and previews.counts["prepared"] == 2

    status, package = await api("POST", f"{W}/tasks/{task['id']}/claim", {"stage": "label"})
    assert status == 200 and package["number"] == 1
    assert previews.idle(60) and previews.counts["prepared"] == 3  # the package's third image

    resp = await api.fetch(
        "pai-lab",
        "api",
        "v1",
        "workspaces",
        "default",
        "labeling",
        "tasks",
        task["id"],
        "items",
        "2",
        "media",
        params={"w": 640, "h": 400},
    )
    shown = Image.open(io.BytesIO(resp.body))
    assert shown.size == (533, 400) and resp.headers["X-Original-Width"] == "1024"
    assert shown.convert("RGB").getpixel((10, 10)) == pytest.approx((80, 90, 160), abs=4)
    assert previews.counts["from_level"] == 1 and previews.counts["from_original"] == 0
