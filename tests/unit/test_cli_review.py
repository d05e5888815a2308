"""Scripted review from a terminal: `pai label submit|pass|reject|copy` and `pai dataset publish`, against a
real `pai server`, with the roles that may and may not."""

from __future__ import annotations

import json


def test_a_package_goes_through_label_check_by_script(live_server, cli, unique_name):
    ws = live_server.client().workspace("default")
    name = unique_name("review")
    ws.labeling.create_task(
        name,
        "image-classification",
        labels=["cat", "dog"],
        flow="label-check",
        lines=[{"data": {"source": f"img/{i}.jpg"}} for i in range(2)],
        package_size=2,
        labelers=["dev"],
        checkers=["ops"],
    )
    as_dev = live_server.client("dev").workspace("default").labeling.get(name)

    def label_everything():
        number = as_dev.claim("label").number
        for item in as_dev.items(number):
            as_dev.submit(item.seq, "cat")
        return number

    number = label_everything()
    rc, out, err = cli("label", "submit", name, str(number), user="dev")
    assert rc == 0, err
    assert f"[Info] Package {number} of [{name}] submitted; now check_pool" in out

    assert cli("label", "claim", name, "--stage", "check", user="ops")[0] == 0
    rc, _, err = cli("label", "pass", name, str(number), user="guest")  # a Guest reviews nothing
    assert rc == 2 and "label.work" in err
    rc, out, err = cli("label", "reject", name, str(number), "-m", "the second one is a dog", "--json", user="ops")
    assert rc == 0, err
    rejected = json.loads(out)
    assert rejected["state"] == "labeling" and rejected["comment"] == "the second one is a dog"
    rc, _, err = cli("label", "reject", name, str(number), user="ops")
    assert rc == 2 and "--comment" in err

    number = label_everything()
    assert cli("label", "submit", name, str(number), user="dev")[0] == 0
    assert cli("label", "claim", name, "--stage", "check", user="ops")[0] == 0
    rc, out, err = cli("label", "pass", name, str(number), user="ops")
    assert rc == 0 and "now done" in out, err
    assert ws.labeling.get(name).refresh().checked == 2

    # a copy keeps items and settings, not answers; a Guest may not copy
    rc, _, err = cli("label", "copy", name, name + "_again", user="guest")
    assert rc == 2 and "label.manage" in err
    rc, out, err = cli("label", "copy", name, name + "_again", "--json")
    assert rc == 0, err
    copy = json.loads(out)
    assert copy["name"] == name + "_again" and copy["total"] == 2 and copy["flow"] == "label-check"
    assert ws.labeling.get(name + "_again").refresh().labeled == 0


def test_dataset_publish_makes_a_private_dataset_visible(live_server, cli, unique_name):
    name = unique_name("pub")
    live_server.client("dev").workspace("default").datasets.register(
        name, items=["one line", "another line"], visibility="private", progress=False
    )
    rc, _, err = cli("dataset", "show", name, user="guest")
    assert rc == 2  # a private dataset is its creator's (and the admins')
    rc, _, err = cli("dataset", "publish", name, user="ops")  # not theirs to publish
    assert rc == 2
    rc, out, err = cli("dataset", "publish", name, user="dev")
    assert rc == 0, err
    assert f"[Info] Dataset [{name}] is visible to the workspace" in out
    rc, out, err = cli("dataset", "show", name, "--json", user="guest")
    assert rc == 0 and json.loads(out)["visibility"] == "workspace", err
    rc, _, err = cli("dataset", "publish", name, user="guest")
    assert rc == 2 and "may not dataset.update" in err
