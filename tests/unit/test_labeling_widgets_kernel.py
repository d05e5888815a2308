"""The labeling widget's kernel side and the media route, against a real ``pai server``: what the
page sends is stored on the server, resumes come from the server, media are sized and checked."""

from __future__ import annotations

import io
import tempfile
import uuid
from pathlib import Path

import pytest
import requests
from PIL import Image

from pai_lab.errors import BadInput
from pai_lab.widgets.labeling import Labeler
from tests.fixtures.labeling_browser import digit_images


class Page:
    """Plays the browser's part over a real comm: opens the widget in a real kernel, keeps its state as
    the kernel syncs it, and invokes the widget's commands as the front end does (anywidget's command
    messages: a request id, one reply)."""

    def __init__(self, kernel, code: str):
        self.kc = kernel
        self.comm_id = None
        self.state: dict = {}
        self.replies: dict[str, tuple[dict, list]] = {}
        self.execute(code)
        assert self.comm_id, "the cell opened no labeler"

    def execute(self, code: str) -> dict:
        msg_id = self.kc.execute(code)
        reply = self.kc.get_shell_msg(timeout=120)
        while reply["parent_header"].get("msg_id") != msg_id:
            reply = self.kc.get_shell_msg(timeout=120)
        self._drain(
            lambda m: (
                m["msg_type"] == "status"
                and m["content"]["execution_state"] == "idle"
                and m["parent_header"].get("msg_id") == msg_id
            )
        )
        assert reply["content"]["status"] == "ok", reply["content"].get("traceback")
        return reply["content"]

    def kernel_value(self, expression: str):
        """What ``expression`` is in the kernel now (read back from its repr)."""
        import ast

        msg_id = self.kc.execute("", user_expressions={"v": expression})
        reply = self.kc.get_shell_msg(timeout=120)
        while reply["parent_header"].get("msg_id") != msg_id:
            reply = self.kc.get_shell_msg(timeout=120)
        value = reply["content"]["user_expressions"]["v"]
        assert value["status"] == "ok", value
        return ast.literal_eval(value["data"]["text/plain"])

    def invoke(self, name: str, **msg) -> tuple[dict, list]:
        request = uuid.uuid4().hex
        content = {"id": request, "kind": "anywidget-command", "name": name, "msg": msg}
        self.kc.shell_channel.send(
            self.kc.session.msg("comm_msg", {"comm_id": self.comm_id, "data": {"method": "custom", "content": content}})
        )
        self._drain(lambda _m: request in self.replies)
        return self.replies.pop(request)

    def send(self, name: str, **msg) -> dict:
        return self.invoke(name, **msg)[0]

    def _drain(self, done) -> None:
        while True:
            m = self.kc.get_iopub_msg(timeout=120)
            content = m["content"]
            if m["msg_type"] == "comm_open" and "stage" in content["data"].get("state", {}):
                self.comm_id, self.state = content["comm_id"], dict(content["data"]["state"])
            elif m["msg_type"] == "comm_msg" and content["comm_id"] == self.comm_id:
                data = content["data"]
                if data.get("method") == "update":
                    self.state.update(data["state"])
                elif data.get("method") == "custom" and data["content"].get("kind") == "anywidget-command-response":
                    self.replies[data["content"]["id"]] = (data["content"]["response"], m.get("buffers") or [])
            if done(m):
                return


@pytest.fixture(scope="module")
def kernel(live_server):
    """A real Python kernel (as JupyterLab starts one) connected to the test server."""
    from jupyter_client.manager import start_new_kernel

    env = live_server.env()
    km, kc = start_new_kernel(kernel_name="python3", env=env, cwd=str(live_server.root))
    try:
        yield kc
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


def open_labeler(kernel, task, stage: str = "label", **options) -> Page:
    args = "".join(f", {k}={v!r}" for k, v in options.items())
    return Page(kernel, f"import pai_lab\nw = pai_lab.connect().labeling.get({task.name!r}).{stage}({args[2:]})")


def survey(label: str) -> list:
    return [{"questionId": "2", "data": label, "markTitle": "单选", "type": "survey/value"}]


@pytest.fixture
def digits_task(live_server, unique_name):
    images = digit_images(live_server.root / unique_name("digits"), 4, size=(640, 480))
    corrupt = live_server.root / f"corrupt_{uuid.uuid4().hex[:6]}.png"
    corrupt.write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    ws = live_server.client().workspace("default")
    lines = [{"data": {"source": str(p)}} for p, _ in images] + [
        {"data": {"source": str(corrupt)}},
        {"data": {"source": "gone/missing.png"}},
    ]
    task = ws.labeling.create_task(
        unique_name("digits"),
        "image-classification",
        lines=lines,
        labels=[str(d) for d in range(10)],
        flow="label-check",
    )
    return task, images


def test_answers_from_the_page_are_stored_once_and_resume_from_the_server(kernel, digits_task):
    task, images = digits_task
    page = open_labeler(kernel, task)
    assert page.state["package"]["number"] == 1 and [i["seq"] for i in page.state["items"]] == list(range(6))

    ack = page.send("answer", seq=0, client_id="c-0", stage="label", answer=str(images[0][1]))
    assert ack == {
        "ok": True,
        "client_id": "c-0",
        "seq": 0,
        "progress": {"total": 6, "labeled": 1, "checked": 0, "accepted": 0},
    }
    assert page.state["progress"]["labeled"] == 1  # the page's counters follow
    # a retry of the same answer (no ack seen by the page) stores nothing new
    page.send("answer", seq=0, client_id="c-0", stage="label", answer=str(images[0][1]))
    assert len(task.history(0)) == 1

    bad = page.send("answer", seq=1, client_id="c-1", stage="label", answer="cat")
    assert bad["ok"] is False and "unknown label 'cat'" in bad["error"]
    assert task.items(1)[1].label is None

    page.send("answer", seq=4, client_id="c-4", stage="label", skip="not an image file")

    # a new widget (a reload, or a restarted kernel) gets every answer from the server
    again = open_labeler(kernel, task)
    by_seq = {i["seq"]: i for i in again.state["items"]}
    assert by_seq[0]["label"] == survey(str(images[0][1]))
    # the page reads simple answers and whether each item is done in the stage, from the server
    assert by_seq[0]["answer"] == {"单选": str(images[0][1])} and by_seq[0]["done"] is True
    assert by_seq[4]["skipped"] == "not an image file" and by_seq[4]["done"] is True
    assert by_seq[1]["label"] is None and by_seq[1]["answer"] is None and by_seq[1]["done"] is False
    assert again.state["task"]["stage"]["counter"] == "labeled"
    assert again.kernel_value("w.answers") == {0: survey(str(images[0][1]))}


def test_submit_then_checker_rejects_and_labeler_gets_the_comment(kernel, digits_task):
    task, images = digits_task
    labeler = open_labeler(kernel, task)
    for seq in range(6):
        if seq < 4:
            labeler.send("answer", seq=seq, client_id=f"l-{seq}", stage="label", answer="1")
        else:
            labeler.send("answer", seq=seq, client_id=f"l-{seq}", stage="label", skip="broken")
    assert labeler.send("submit")["ok"]
    assert labeler.state["package"] is None and "submitted" in labeler.state["notice"]
    # the answers given in this labeler stay visible once their package is submitted
    assert labeler.kernel_value("w.answers") == {seq: survey("1") for seq in range(4)}

    checker = open_labeler(kernel, task, "check")
    assert checker.state["stage"] == "check"
    assert [i["seq"] for i in checker.state["items"]] == [0, 1, 2, 3]  # skipped items are not checked
    checker.send("answer", seq=0, client_id="k-0", stage="check", answer=str(images[0][1]))
    assert checker.send("review", verdict="reject", comment="most digits are wrong")["ok"]
    assert checker.state["package"] is None

    back = open_labeler(kernel, task)
    assert back.state["package"]["number"] == 1 and back.state["package"]["rework"] == 1
    assert "most digits are wrong" in back.state["notice"]
    assert task.history(0)[-1].stage == "check"  # the checker's modification is kept in the history


def test_reviewing_a_package_needs_a_comment_to_reject(kernel, digits_task):
    task, _ = digits_task
    labeler = open_labeler(kernel, task)
    for seq in range(6):
        labeler.send("answer", seq=seq, client_id=f"x-{seq}", stage="label", answer="2")
    labeler.send("submit")
    checker = open_labeler(kernel, task, "check")
    said = checker.send("review", verdict="reject", comment="  ")
    assert said["ok"] is False and "comment" in said["error"]
    assert task.packages()[0].state == "checking"
    unknown = checker.send("review", verdict="maybe")
    assert unknown["ok"] is False and "verdict must be pass or reject" in unknown["error"]


def test_a_package_opens_in_one_request_and_its_answers_without_its_items(live_server, digits_task):
    task, images = digits_task
    api = f"{live_server.url}pai-lab/api/v1/workspaces/default/labeling/tasks/{task.id}"
    auth = {"Authorization": f"token {live_server.token}"}
    opened = requests.post(f"{api}/open", json={"stage": "label"}, headers=auth, timeout=30)
    assert opened.status_code == 200, opened.text
    body = opened.json()
    assert body["package"]["number"] == 1 and body["package"]["holder"] == "owner"
    assert body["stage"] == {
        "name": "label",
        "column": "label",
        "shows": ["label"],
        "counter": "labeled",
        "items": "all",
    }
    assert body["progress"] == {"total": 6, "labeled": 0, "checked": 0, "accepted": 0}
    assert [(i["seq"], i["done"], i["answer"]) for i in body["items"]][:2] == [(0, False, None), (1, False, None)]

    ack = requests.post(f"{api}/answers", json={"item": 0, "answer": str(images[0][1])}, headers=auth, timeout=30)
    assert ack.status_code == 201 and ack.json()["progress"]["labeled"] == 1  # the counters come with the ack
    answers = requests.get(f"{api}/packages/1/answers", params={"stage": "label"}, headers=auth, timeout=30)
    assert answers.json() == {"0": survey(str(images[0][1]))}
    again = requests.post(f"{api}/open", json={"stage": "label"}, headers=auth, timeout=30).json()
    assert again["items"][0]["done"] and again["items"][0]["answer"] == {"单选": str(images[0][1])}
    refused = requests.post(f"{api}/open", json={"stage": "review"}, headers=auth, timeout=30)
    assert refused.status_code == 400 and "stage" in refused.text


def media_url(live_server, task, seq: int) -> str:
    return f"{live_server.url}pai-lab/api/v1/workspaces/default/labeling/tasks/{task.id}/items/{seq}/media"


def test_media_route_sends_images_sized_to_the_view_with_their_original_size(live_server, digits_task):
    task, _ = digits_task
    auth = {"Authorization": f"token {live_server.token}"}
    resp = requests.get(media_url(live_server, task, 0), params={"w": 200, "h": 200}, headers=auth, timeout=30)
    assert resp.status_code == 200
    assert (resp.headers["X-Original-Width"], resp.headers["X-Original-Height"]) == ("640", "480")
    shown = Image.open(io.BytesIO(resp.content))
    assert max(shown.size) <= 200 and shown.size[0] / shown.size[1] == pytest.approx(640 / 480, rel=0.02)

    original = requests.get(media_url(live_server, task, 0), headers=auth, timeout=30)
    assert Image.open(io.BytesIO(original.content)).size == (640, 480)
    # an image that fits the view comes as it is; one a little larger is still scaled to fit
    roomy = requests.get(media_url(live_server, task, 0), params={"w": 1280, "h": 720}, headers=auth, timeout=30)
    assert roomy.status_code == 200 and roomy.content == original.content
    near = requests.get(media_url(live_server, task, 0), params={"w": 576, "h": 448}, headers=auth, timeout=30)
    assert near.status_code == 200 and Image.open(io.BytesIO(near.content)).size == (576, 432)

    corrupt = requests.get(media_url(live_server, task, 4), params={"w": 200, "h": 200}, headers=auth, timeout=30)
    assert corrupt.status_code == 400 and "skip the item as invalid" in corrupt.json()["error"]["message"]
    missing = requests.get(media_url(live_server, task, 5), headers=auth, timeout=30)
    assert missing.status_code == 404 and "does not exist" in missing.json()["error"]["message"]

    assert requests.get(media_url(live_server, task, 0), timeout=30).status_code in (401, 403)
    stranger = requests.get(
        media_url(live_server, task, 0), headers={"Authorization": "token tok-stranger"}, timeout=30
    )
    assert stranger.status_code == 403


def test_media_outside_the_servers_folders_is_refused(live_server, unique_name):
    outside = Path(tempfile.mkdtemp()) / "secret.png"  # not under the test server's allowed folders
    Image.new("RGB", (8, 8)).save(outside)
    ws = live_server.client().workspace("default")
    # the item's shown media is checked when the task is created...
    with pytest.raises(BadInput) as refused:
        ws.labeling.create_task(
            unique_name("outside"), "image-classification", labels=["a"], lines=[{"data": {"source": str(outside)}}]
        )
    assert refused.value.field == "lines" and "outside the allowed folders" in refused.value.message
    # ...and the media route checks whatever key it is asked for
    task = ws.labeling.create_task(
        unique_name("outside"),
        "image-classification",
        labels=["a"],
        lines=[{"data": {"source": "a.png", "other": str(outside)}}],
    )
    resp = requests.get(
        media_url(live_server, task, 0),
        params={"key": "other"},
        headers={"Authorization": f"token {live_server.token}"},
        timeout=30,
    )
    assert resp.status_code == 400 and "outside the allowed folders" in resp.json()["error"]["message"]


def test_media_through_the_kernel_for_pages_that_cannot_reach_the_server(kernel, digits_task):
    task, _ = digits_task
    page = open_labeler(kernel, task, media_via_kernel=True)
    assert page.state["media_via_kernel"] is True
    reply, buffers = page.invoke("media", seq=0, key="source", w=160, h=160)
    assert reply["ok"] and (reply["width"], reply["height"]) == (640, 480)
    assert max(Image.open(io.BytesIO(buffers[0])).size) <= 160
    failed = page.send("media", seq=4, key="source", w=160, h=160)
    assert failed["ok"] is False and "image" in failed["error"]


def test_unknown_stage_is_refused(digits_task):
    task, _ = digits_task
    with pytest.raises(ValueError, match="stage must be one of"):
        Labeler(task, "review")
