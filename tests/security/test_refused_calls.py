"""A refused call records nothing: after a 403 (role) or a 4xx (validation), what members read about
scans and labeling progress is what it was before the call."""

from __future__ import annotations

W = "/workspaces/default"


async def _progress(api, name):
    status, body = await api("GET", f"{W}/datasets/{name}/progress", user="labeladmin")
    assert status == 200, body
    return body


async def test_a_refused_scan_leaves_the_progress_members_read_as_it_was(api, members, pai_root):
    await members("default")
    (pai_root / "pics").mkdir()
    for i in range(3):
        (pai_root / "pics" / f"{i}.png").write_bytes(b"x")
    status, body = await api(
        "POST", f"{W}/datasets", {"name": "pics", "source": "pics", "scan": True}, user="labeladmin"
    )
    assert status == 201, body
    scanned = await _progress(api, "pics")
    assert scanned["items"] == 3 and scanned["finished_at"] and scanned["error"] is None, scanned

    refused = [
        # the role check: a Guest may not register nor re-scan, a stranger is no member at all
        ("guest", "POST", f"{W}/datasets/pics/versions", {}),
        ("guest", "POST", f"{W}/datasets", {"name": "ghost", "source": "pics", "scan": True}),
        ("stranger", "POST", f"{W}/datasets", {"name": "ghost", "source": "pics", "scan": True}),
        # validation, by a member who may register: a taken name, a path into the state, an unknown version item
        ("labeladmin", "POST", f"{W}/datasets", {"name": "pics", "source": "pics", "scan": True}),
        ("labeladmin", "POST", f"{W}/datasets", {"name": "ghost", "source": ".pai_lab", "scan": True}),
        ("labeladmin", "POST", f"{W}/datasets", {"name": "ghost", "items": [{"data": {"source": ".pai_lab/pai.db"}}]}),
        ("labeladmin", "POST", f"{W}/datasets/pics/versions", {"items": [{"data": {"source": "/etc/hostname"}}]}),
    ]
    for user, method, path, body in refused:
        status, answer = await api(method, path, body, user=user)
        assert 400 <= status < 500, (user, path, status, answer)
        assert await _progress(api, "pics") == scanned, (user, path)
        ghost = await _progress(api, "ghost")
        assert ghost == {
            "dataset": "ghost",
            "running": False,
            "items": 0,
            "bytes": 0,
            "started_at": None,
            "finished_at": None,
            "error": None,
        }, (user, path, ghost)
    status, versions = await api("GET", f"{W}/datasets/pics/versions", user="guest")
    assert status == 200 and [v["version"] for v in versions] == [1]


async def test_refused_labeling_calls_leave_the_task_s_progress_and_people_as_they_were(api, members):
    await members("default")
    lines = [{"data": {"source": f"text {i}"}} for i in range(4)]
    status, task = await api(
        "POST",
        f"{W}/labeling/tasks",
        {
            "name": "t",
            "template": "text-classification",
            "labels": ["a", "b"],
            "lines": lines,
            "package_size": 2,
            "labelers": ["dev"],
        },
        user="labeladmin",
    )
    assert status == 201, task
    T = f"{W}/labeling/tasks/t"
    status, before = await api("GET", T + "/stats", user="labeladmin")
    assert status == 200, before

    # the role check: a Guest may neither take a package nor answer
    status, body = await api("POST", T + "/claim", {"stage": "label"}, user="guest")
    assert status == 403, body
    status, body = await api("POST", T + "/answers", {"item": 0, "answer": "a"}, user="guest")
    assert 400 <= status < 500, body
    # validation: the labeler holds package 1 but gives a label the task does not have, or none at all
    status, package = await api("POST", T + "/claim", {"stage": "label"}, user="dev")
    assert status == 200 and package["number"] == 1, package
    for answer in ({"item": 0, "answer": "zzz"}, {"item": 0}, {"item": 2, "answer": "a"}):
        status, body = await api("POST", T + "/answers", answer, user="dev")
        assert 400 <= status < 500, (answer, body)

    status, after = await api("GET", T + "/stats", user="labeladmin")
    assert status == 200, after
    assert after["people"] == [] and after["labeled"] == 0 and after["skipped"] == 0, after
    assert after["packages"] == {
        **before["packages"],
        "label_pool": before["packages"]["label_pool"] - 1,
        "labeling": 1,
    }, after
    status, items = await api("GET", T + "/items", user="labeladmin")
    assert status == 200 and all(i["label"] is None for i in items), items
    status, history = await api("GET", T + "/items/0/history", user="labeladmin")
    assert status == 200 and history == [], history
