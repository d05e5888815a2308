"""A large image task's first order on a real `pai server` whose deadline for it is short: the REST route
answers 503 with Retry-After while the embedding is built, and the Python client and `pai label order` ask
again until it is done, showing how far the server got."""

from __future__ import annotations

import io
import time

import pytest

from tests.conftest import start_pai_server
from tests.unit.test_labeling_order_builds import SlowImages


@pytest.fixture(scope="module")
def slow():
    images = SlowImages(delay=0.3)
    yield images
    images.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory, slow):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PAI_LAB_ORDER_EMBEDDING_WAIT", "0.2")  # inherited by the server's process
        live = start_pai_server(tmp_path_factory.mktemp("orderwait") / "root", "--allowed-url-prefix", slow.url + "/")
    yield live
    live.stop()


def test_the_route_says_retry_and_the_client_waits_with_progress(server, slow):
    ws = server.client().workspace("default")
    task = ws.labeling.create_task(
        "remote-shades", "image-classification", labels=["a", "b"], package_size=3, lines=slow.lines()
    )
    resp = ws.http.session.post(
        ws.http.url(f"/workspaces/default/labeling/tasks/{task.id}/order"), json={"by": "typical"}
    )
    assert resp.status_code == 503, resp.text
    assert int(resp.headers["Retry-After"]) >= 1
    error = resp.json()["error"]
    assert error["code"] == "computing" and error["field"] == "by"
    assert "computing the image embedding" in error["message"] and error["message"].endswith("retry")

    with pytest.raises(TimeoutError) as waited:  # a caller may bound the wait; the build goes on meanwhile
        task.order("typical", progress=False, timeout=0.1)
    assert "images read" in str(waited.value)

    shown = io.StringIO()
    done = task.order("typical", progress=shown)
    assert (done.by, done.items, done.packages) == ("typical", len(slow.images), 9)
    assert "images read" in shown.getvalue()
    # one build: each image read by it once (and at most once more, by the labelers' preview preparation)
    assert set(slow.gets) == set(slow.images) and max(slow.gets.values()) <= 2


def test_the_cli_waits_for_the_embedding_and_shows_how_far_it_got(server, slow, monkeypatch, capsys):
    from pai_lab.cli import main

    ws = server.client().workspace("default")
    ws.labeling.create_task("cli-remote", "image-classification", labels=["a", "b"], package_size=3, lines=slow.lines())
    monkeypatch.setenv("PAI_LAB_URL", server.url)
    monkeypatch.setenv("PAI_LAB_TOKEN", server.token)
    capsys.readouterr()
    rc = main(["label", "order", "cli-remote", "--by", "typical"])
    out, err = capsys.readouterr()
    assert rc == 0, err
    assert f"{len(slow.images)} items" in out and "by typical" in out
    assert "images read" in err


def _ordered_until_answered(ws, task_id: str, by: str = "typical"):
    """The order route called as a user's loop would: again after each 503 "computing"; (answer, calls)."""
    calls = 0
    while True:
        resp = ws.http.session.post(ws.http.url(f"/workspaces/default/labeling/tasks/{task_id}/order"), json={"by": by})
        calls += 1
        if resp.status_code != 503 or resp.json()["error"]["code"] != "computing":
            return resp, calls
        time.sleep(0.1)


def _logged(ws, task_id: str) -> list[str]:
    ops = ws.oplog(limit=1000)
    return list(ops[ops.target.str.endswith(f"/tasks/{task_id}/order")].result)


def test_an_order_asked_again_while_computing_is_one_line_of_the_operation_log(server, slow):
    ws = server.client().workspace("default")
    task = ws.labeling.create_task(
        "logged", "image-classification", labels=["a", "b"], package_size=3, lines=slow.lines()
    )
    resp, calls = _ordered_until_answered(ws, task.id)
    assert resp.status_code == 200, resp.text
    assert calls > 1  # it was told to retry at least once
    assert _logged(ws, task.id) == ["ok"]

    # a build that fails is a failed operation, written as one
    gone = [{"data": {"source": f"{slow.url}/gone-{n}.png"}} for n in range(3)]
    broken = ws.labeling.create_task("logged-gone", "image-classification", labels=["a", "b"], lines=gone)
    resp, _ = _ordered_until_answered(ws, broken.id)
    assert resp.status_code == 400 and "none of the task's images could be read" in resp.text
    assert _logged(ws, broken.id) == ["error:400"]


def test_an_order_name_past_the_bound_is_a_400_naming_by(server):
    ws = server.client().workspace("default")
    resp = ws.http.session.post(ws.http.url("/workspaces/default/labeling/tasks/1/order"), json={"by": "x" * 5000})
    assert resp.status_code == 400, resp.text
    assert resp.json()["error"]["field"] == "by"


def test_who_may_not_order_a_task_or_reaches_it_from_another_workspace_is_refused(server, slow, unique_name):
    owner = server.client().create_workspace(unique_name("orders"))
    owner.members.add("guest", ["Guest"])
    owner.members.add("dev", ["AlgorithmDeveloper"])
    task = owner.labeling.create_task("guarded", "image-classification", labels=["a", "b"], lines=slow.lines())

    def order(user: str, workspace: str):
        ws = server.client(user).workspace(workspace)
        return ws.http.session.post(
            ws.http.url(f"/workspaces/{workspace}/labeling/tasks/{task.id}/order"), json={"by": "typical"}
        )

    for user in ("guest", "dev"):  # members without label.manage
        refused = order(user, owner.name)
        assert refused.status_code == 403, refused.text
    other = server.client("stranger").create_workspace(unique_name("theirs"))
    assert order("stranger", other.name).status_code == 404  # the task id through their own workspace
    assert order("stranger", owner.name).status_code == 403
