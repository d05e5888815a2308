"""The sample path on a plain install (no extras): a runtime dependency that is not declared fails here.

Run with the Python of a fresh virtual environment holding only the built wheel. It starts `pai server`,
registers sample://digits, creates a labeling task on it, takes a dataset thumbnail and an item's media view
over REST, and stops the server. Exits non-zero, saying which step failed, on any error.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests
from PIL import Image


def step(what: str, resp: requests.Response, status: int) -> requests.Response:
    if resp.status_code != status:
        sys.exit(f"sample path: {what}: HTTP {resp.status_code}: {resp.text[:500]}")
    print(f"ok  {what}", flush=True)
    return resp


def png_size(what: str, body: bytes) -> tuple[int, int]:
    image = Image.open(io.BytesIO(body))
    if image.format != "PNG" and image.format != "JPEG":
        sys.exit(f"sample path: {what}: not an image ({image.format})")
    return image.size


def main() -> None:
    root = Path(tempfile.mkdtemp(prefix="pai-plain-"))
    pai = Path(sys.executable).with_name("pai")  # the venv's console script: the installed entry point
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAI_LAB_")}
    log = open(root / "server.log", "w+")  # noqa: SIM115 - the server's log: it outlives this block
    server = subprocess.Popen(
        [str(pai), "server", "--root", str(root)], stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
    )
    runtime = root / ".pai_lab" / "server.json"
    try:
        deadline = time.monotonic() + 120
        while not runtime.exists():
            if server.poll() is not None or time.monotonic() > deadline:
                log.seek(0)
                sys.exit(f"sample path: `pai server` did not start:\n{log.read()[-3000:]}")
            time.sleep(0.2)
        time.sleep(0.2)  # written whole, but let the server finish its first start-up step
        info = json.loads(runtime.read_text())
        api = info["url"].rstrip("/") + "/pai-lab/api/v1"
        http = requests.Session()
        http.headers["Authorization"] = f"token {info['token']}"
        ws = f"{api}/workspaces/default"

        ds = step(
            "register sample://digits",
            http.post(f"{ws}/datasets", json={"name": "digits", "source": "sample://digits"}, timeout=300),
            201,
        ).json()
        if ds["item_count"] != 1797 or ds["data_type"] != "image":
            sys.exit(f"sample path: the digits sample has {ds['item_count']} {ds['data_type']} items, not 1797 images")
        thumb = step(
            "dataset thumbnail",
            http.get(f"{ws}/datasets/digits/thumbnail", params={"index": 0, "size": 16}, timeout=60),
            200,
        )
        if max(png_size("thumbnail", thumb.content)) != 16:
            sys.exit("sample path: the thumbnail is not 16 px on its long side")

        task = step(
            "create a labeling task",
            http.post(
                f"{ws}/labeling/tasks",
                json={
                    "name": "digits-labels",
                    "template": "image-classification",
                    "dataset": "digits",
                    "labels": [str(d) for d in range(10)],
                    "package_size": 20,
                },
                timeout=120,
            ),
            201,
        ).json()
        view = step(
            "an item's media view",
            http.get(f"{ws}/labeling/tasks/{task['id']}/items/0/media", params={"w": 16, "h": 16}, timeout=60),
            200,
        )
        if max(png_size("media view", view.content)) > 16:
            sys.exit("sample path: the media view was not scaled to the view")
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            rc = server.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            rc = server.wait()
        log.close()
    if rc != 0 or runtime.exists():
        sys.exit(
            f"sample path: `pai server` stopped with {rc}, runtime file left: {runtime.exists()}:\n"
            f"{(root / 'server.log').read_text()[-3000:]}"
        )
    shutil.rmtree(root, ignore_errors=True)
    print("ok  server stopped; the sample path works on a plain install")


if __name__ == "__main__":
    main()
