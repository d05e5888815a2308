"""The labeling flow as people live it: claim, label, submit, check, reject with a comment,
rework as a new revision, accept; who may do what; answers that do not fit are refused and
change nothing."""

from __future__ import annotations

import itertools

import pytest
from sqlalchemy import event

from pai_lab import workspaces
from pai_lab.errors import BadInput, Conflict, Forbidden
from pai_lab.labeling import flow as fl
from pai_lab.labeling import schemas as sc
from pai_lab.labeling import service as sv
from pai_lab.labeling.templates import parse_spec

W = "default"

# Every move each flow allows, written out by hand: (state, action) -> new state.
ALLOWED = {
    "label": {
        ("label_pool", "claim"): "labeling",
        ("labeling", "submit"): "done",
        ("labeling", "release"): "label_pool",
        ("labeling", "reassign"): "labeling",
        ("label_pool", "reassign"): "labeling",
    },
    "label-check": {
        ("label_pool", "claim"): "labeling",
        ("labeling", "submit"): "check_pool",
        ("labeling", "release"): "label_pool",
        ("labeling", "reassign"): "labeling",
        ("label_pool", "reassign"): "labeling",
        ("check_pool", "claim"): "checking",
        ("checking", "pass"): "done",
        ("checking", "reject"): "labeling",
        ("checking", "release"): "check_pool",
        ("checking", "reassign"): "checking",
        ("check_pool", "reassign"): "checking",
    },
    "label-accept": {
        ("label_pool", "claim"): "labeling",
        ("labeling", "submit"): "accept_pool",
        ("labeling", "release"): "label_pool",
        ("labeling", "reassign"): "labeling",
        ("label_pool", "reassign"): "labeling",
        ("accept_pool", "claim"): "accepting",
        ("accepting", "pass"): "done",
        ("accepting", "reject"): "labeling",
        ("accepting", "release"): "accept_pool",
        ("accepting", "reassign"): "accepting",
        ("accept_pool", "reassign"): "accepting",
    },
}
ALLOWED["label-check-accept"] = {
    **ALLOWED["label-check"],
    **ALLOWED["label-accept"],
    ("labeling", "submit"): "check_pool",
    ("checking", "pass"): "accept_pool",
}


@pytest.mark.parametrize("flow_name", fl.FLOWS)
def test_state_machine_allows_exactly_the_documented_moves(flow_name):
    for state, action in itertools.product(fl.PACKAGE_STATES, fl.ACTIONS):
        expected = ALLOWED[flow_name].get((state, action))
        if expected is None:
            with pytest.raises(Conflict):
                fl.move(flow_name, state, action)
        else:
            assert fl.move(flow_name, state, action) == expected, (state, action)


def test_task_state_follows_its_packages():
    assert fl.task_state("label-check", {"label_pool", "check_pool"}, False) == "Labeling"
    assert fl.task_state("label-check", {"checking", "done"}, False) == "Checking"
    assert fl.task_state("label-accept", {"accept_pool"}, False) == "Accepting"
    assert fl.task_state("label", {"done"}, False) == "Completed"
    assert fl.task_state("label", {"labeling"}, True) == "Offline"


# ---------------------------------------------------------------- a team on one task


@pytest.fixture
def team(label_platform):
    with label_platform.store.transaction() as s:
        existing = {m.username for m in workspaces.list_members(s, "owner", W)}
        for user, role in (
            ("alice", "AlgorithmDeveloper"),
            ("bob", "AlgorithmDeveloper"),
            ("carol", "AlgorithmOps"),
            ("dave", "AlgorithmDeveloper"),
            ("gina", "Guest"),
            ("lena", "LabelingAdmin"),
        ):
            if user not in existing:
                workspaces.add_member(s, "owner", W, user, [role])
    return label_platform.store


def _create(store, user="lena", **kw):
    body = dict(
        name="cats",
        template="image-classification",
        labels=["cat", "dog"],
        flow="label-check-accept",
        lines=[{"data": {"source": f"img/{i}.jpg"}} for i in range(3)],
        package_size=3,
        labelers=["alice"],
        checkers=["bob"],
        acceptors=["carol"],
        admins=["lena"],
    )
    body.update(kw)
    with store.transaction() as s:
        return sv.create_task(s, user, W, sc.TaskCreate(**body))


def _do(store, fn, *args, **kw):
    with store.transaction() as s:
        return fn(s, *args, **kw)


def answer(store, user, task, item, value=None, **kw):
    return _do(store, sv.submit_answer, user, W, task, sc.AnswerSubmit(item=item, answer=value, **kw))


def test_label_check_accept_with_rejection_and_rework(team):
    task = _create(team).id
    # only the people on a stage act on it
    with pytest.raises(Forbidden, match="assigned"):
        _do(team, sv.claim, "dave", W, task, "label")
    with pytest.raises(Forbidden):
        _do(team, sv.claim, "alice", W, task, "check")
    pkg = _do(team, sv.claim, "alice", W, task, "label")
    assert (pkg.number, pkg.state, pkg.holder) == (1, "labeling", "alice")
    assert _do(team, sv.claim, "alice", W, task, "label").number == 1  # the package she already holds
    answer(team, "alice", task, 0, "cat")
    with pytest.raises(Forbidden):
        answer(team, "bob", task, 1, "dog", stage="label")
    with pytest.raises(Conflict, match=r"do not hold package 1 .*held by alice"):
        answer(team, "lena", task, 1, "dog")
    with pytest.raises(Conflict, match=r"2 item\(s\) of package 1 have no answer yet \(items 1, 2\)"):
        _do(team, sv.submit_package, "alice", W, task, 1)
    with pytest.raises(BadInput, match="reason"):
        answer(team, "alice", task, 2, skip=" ")
    answer(team, "alice", task, 1, "cat")
    answer(team, "alice", task, 2, skip="the image is blank")
    assert _do(team, sv.submit_package, "alice", W, task, 1).state == "check_pool"
    with pytest.raises(Conflict, match=r"finished|check pool"):
        _do(team, sv.submit_package, "alice", W, task, 1)

    # the checker corrects item 1 (modify), then rejects with a comment
    assert _do(team, sv.claim, "bob", W, task, "check").state == "checking"
    answer(team, "bob", task, 1, "dog")
    with pytest.raises(BadInput, match="comment"):
        _do(team, sv.review, "bob", W, task, 1, "reject", "")
    back = _do(team, sv.review, "bob", W, task, 1, "reject", "item 0 is a dog too")
    assert (back.state, back.holder, back.comment, back.rework) == ("labeling", "alice", "item 0 is a dog too", 1)
    items = _do(team, sv.package_items, "alice", W, task, 1)
    assert [i.check for i in items] == [None, None, None]  # checks were of the old labels
    answer(team, "alice", task, 0, "dog")
    _do(team, sv.submit_package, "alice", W, task, 1)
    history = _do(team, sv.item_history, "lena", W, task, 0)
    assert [(h.stage, h.author, h.results[0]["data"]) for h in history] == [
        ("label", "alice", "cat"),
        ("label", "alice", "dog"),
    ]
    assert [h.revision for h in history] == [1, 2]

    _do(team, sv.claim, "bob", W, task, "check")
    assert _do(team, sv.review, "bob", W, task, 1, "pass").state == "accept_pool"
    assert _do(team, sv.get_task, "lena", W, task).state == "Accepting"
    _do(team, sv.claim, "carol", W, task, "accept")
    assert _do(team, sv.review, "carol", W, task, 1, "pass").state == "done"
    info = _do(team, sv.get_task, "lena", W, task)
    assert (info.state, info.labeled, info.checked, info.accepted, info.skipped, info.rejected) == (
        "Completed",
        3,
        2,
        2,
        1,
        1,
    )
    st = _do(team, sv.stats, "lena", W, task)
    assert st.agreement == 1.0 and [(a.labeler, a.checked) for a in st.by_labeler] == [("alice", 2)]
    assert {(p.user, p.stage) for p in st.people} == {("alice", "label"), ("bob", "check"), ("carol", "accept")}
    with pytest.raises(Conflict, match="finished"):
        answer(team, "alice", task, 0, "cat")


def test_checker_modification_counts_against_agreement(team):
    task = _create(team, flow="label-check", acceptors=[]).id
    _do(team, sv.claim, "alice", W, task, "label")
    for i in range(3):
        answer(team, "alice", task, i, "cat")
    _do(team, sv.submit_package, "alice", W, task, 1)
    _do(team, sv.claim, "bob", W, task, "check")
    answer(team, "bob", task, 2, "dog")
    _do(team, sv.review, "bob", W, task, 1, "pass")
    st = _do(team, sv.stats, "lena", W, task)
    assert st.by_labeler[0].checked == 3 and st.by_labeler[0].agreed == 2
    assert st.agreement == pytest.approx(2 / 3)


def test_roles_decide_who_creates_exports_and_administers(team):
    with pytest.raises(Forbidden, match=r"label\.manage"):
        _create(team, user="alice", name="nope")
    with pytest.raises(Forbidden):
        _create(team, user="gina", name="nope")
    task = _create(team).id
    _do(team, sv.claim, "alice", W, task, "label")
    with pytest.raises(Forbidden, match="holder"):
        _do(team, sv.release, "dave", W, task, 1)
    with pytest.raises(BadInput, match="not a labeler"):
        _do(team, sv.reassign, "lena", W, task, 1, "dave")
    _do(team, sv.set_people, "lena", W, task, sc.TaskPeople(labelers=["alice", "dave"]))
    moved = _do(team, sv.reassign, "lena", W, task, 1, "dave")
    assert (moved.holder, moved.state) == ("dave", "labeling")
    assert _do(team, sv.release, "dave", W, task, 1).state == "label_pool"
    with pytest.raises(Forbidden):
        _do(team, sv.delete_task, "alice", W, task)
    with pytest.raises(Forbidden):
        _do(team, sv.set_offline, "bob", W, task, True)
    mine = {t.name: t.my_roles for t in _do(team, sv.list_tasks, "alice", W)}
    assert mine == {"cats": ["labeler"]}
    assert _do(team, sv.get_task, "lena", W, task).my_roles == ["admin"]


def test_offline_task_takes_no_claims_until_online(team):
    task = _create(team).id
    assert _do(team, sv.set_offline, "lena", W, task, True).state == "Offline"
    with pytest.raises(Conflict, match="offline"):
        _do(team, sv.claim, "alice", W, task, "label")
    assert _do(team, sv.set_offline, "lena", W, task, False).state == "Labeling"
    assert _do(team, sv.claim, "alice", W, task, "label") is not None


def test_copy_keeps_items_and_settings_not_answers(team):
    task = _create(team).id
    _do(team, sv.claim, "alice", W, task, "label")
    answer(team, "alice", task, 0, "cat")
    copy = _do(team, sv.copy_task, "lena", W, task, "cats-again")
    assert (copy.total, copy.labeled, copy.flow, copy.people["checkers"]) == (3, 0, "label-check-accept", ["bob"])
    assert copy.id != task and len(copy.id) == 19


# ---------------------------------------------------------------- answers that do not fit


BAD_ANSWERS = [
    ("image-classification", {}, "lion", "unknown label 'lion'"),
    ("image-classification", {}, ["cat", "dog"], "one label"),
    ("text-classification", {"multi": True}, "cat", "list of labels"),
    (
        "object-detection",
        {},
        {"width": 100, "height": 50, "shapes": [{"box": [10, 10, 120, 40], "label": "cat"}]},
        "outside the 100x50 image",
    ),
    ("object-detection", {}, {"width": 100, "height": 50, "shapes": [{"box": [1, 1, 5, 5]}]}, "needs a label"),
    ("ner", {}, [{"start": 3, "end": 40, "label": "cat"}], "beyond the text"),
    ("ner", {}, [{"start": 0, "end": 2, "label": "cat", "text": "xyz"}], "is not the text at 0..2"),
    (
        "relation",
        {"relation_labels": ["owns"]},
        {
            "entities": [{"start": 0, "end": 2, "label": "cat"}],
            "relations": [{"from": [0, 2], "to": [4, 6], "label": "owns"}],
        },
        "no marked entity spans 4..6",
    ),
    ("audio-segmentation", {}, [{"start": 3.5, "end": 1.0, "label": "cat"}], "0 <= start < end"),
]


@pytest.mark.parametrize("template,extra,value,message", BAD_ANSWERS)
def test_answers_that_do_not_fit_are_refused_and_nothing_changes(label_platform, template, extra, value, message):
    store = label_platform.store
    source = "the cat sat" if template in ("ner", "relation") else "media/x.wav"
    with store.transaction() as s:
        task = sv.create_task(
            s,
            "owner",
            W,
            sc.TaskCreate(
                name="t", template=template, labels=["cat", "dog"], lines=[{"data": {"source": source}}], **extra
            ),
        ).id
    _do(store, sv.claim, "owner", W, task, "label")
    with pytest.raises(BadInput) as err:
        answer(store, "owner", task, 0, value)
    assert message in err.value.message and err.value.field in ("results", "answer")
    assert _do(store, sv.package_items, "owner", W, task, 1)[0].label is None
    assert _do(store, sv.item_history, "owner", W, task, 0) == []


def test_retry_with_the_same_client_id_stores_one_answer(label_platform):
    store = label_platform.store
    with store.transaction() as s:
        task = sv.create_task(
            s,
            "owner",
            W,
            sc.TaskCreate(
                name="t",
                template="image-classification",
                labels=["cat"],
                lines=[{"data": {"source": "a.jpg"}}, {"data": {"source": "b.jpg"}}],
            ),
        ).id
    _do(store, sv.claim, "owner", W, task, "label")
    first = answer(store, "owner", task, 0, "cat", client_id="k-1")
    again = answer(store, "owner", task, 0, "cat", client_id="k-1")
    assert (first.duplicate, again.duplicate, again.id) == (False, True, first.id)
    assert len(_do(store, sv.item_history, "owner", W, task, 0)) == 1
    with pytest.raises(Conflict, match="already used for item 0"):
        answer(store, "owner", task, 1, "cat", client_id="k-1")


def test_two_requests_with_the_same_client_id_racing_in_store_one_answer(label_platform):
    store = label_platform.store
    with store.transaction() as s:
        task = sv.create_task(
            s,
            "owner",
            W,
            sc.TaskCreate(
                name="t", template="image-classification", labels=["cat"], lines=[{"data": {"source": "a.jpg"}}]
            ),
        ).id
    _do(store, sv.claim, "owner", W, task, "label")
    body = sc.AnswerSubmit(item=0, answer="cat", client_id="k-race")
    rival = []

    def the_other_request_commits(_conn, _cursor, statement, *_):
        # the other request passed the same duplicate check and commits first, just before this one writes
        if not rival and statement.lstrip().upper().startswith(("UPDATE", "INSERT")):
            rival.append(None)
            rival[0] = answer(store, "owner", task, 0, "cat", client_id="k-race")

    event.listen(store.engine, "before_cursor_execute", the_other_request_commits)
    try:
        ack = sv.store_answer(store.transaction, "owner", W, task, body)
    finally:
        event.remove(store.engine, "before_cursor_execute", the_other_request_commits)
    assert rival[0].duplicate is False
    assert (ack.duplicate, ack.id) == (True, rival[0].id)
    assert [a.client_id for a in _do(store, sv.item_history, "owner", W, task, 0)] == ["k-race"]


# ---------------------------------------------------------------- creating tasks


@pytest.mark.parametrize(
    "change,message,field",
    [
        ({"name": "_starts_badly"}, "invalid task name", "name"),
        ({"name": "x" * 101}, "invalid task name", "name"),
        ({"labels": []}, "needs labels", "labels"),
        ({"template": "segmentation"}, "unknown template 'segmentation'", "template"),
        ({"labels": ["cat", "cat"]}, "given twice", "labels"),
        ({"lines": [{"source": "a.jpg"}]}, "line 1: a manifest line must be", "lines"),
        ({"lines": [{"data": {"url": "a.jpg"}}]}, "no 'source' key", "lines"),
        ({"lines": []}, "needs items", "dataset"),
        ({"package_by": "camera"}, "no 'camera' field", "package_by"),
        ({"labelers": ["nobody"]}, "'nobody' is not a member", "labelers"),
        ({"content_keys": {"picture": "url"}}, "no content 'picture'", "content_keys"),
    ],
)
def test_bad_task_settings_are_refused_and_nothing_is_stored(label_platform, change, message, field):
    body = {
        "name": "ok",
        "template": "image-classification",
        "labels": ["cat"],
        "lines": [{"data": {"source": "a.jpg"}}],
        **change,
    }
    with pytest.raises(BadInput) as err:
        _do(label_platform.store, sv.create_task, "owner", W, sc.TaskCreate(**body))
    assert message in err.value.message and err.value.field == field
    assert _do(label_platform.store, sv.list_tasks, "owner", W) == []


def test_package_size_follows_the_seed_minimum_by_dataset_size(label_platform):
    assert [sv.min_package_size(n) for n in (10, 20_000, 20_001, 100_001, 500_001)] == [1, 1, 5, 25, 50]
    lines = [{"data": {"source": f"t{i}"}} for i in range(20_001)]
    with pytest.raises(BadInput, match="use at least 5") as err:
        _do(
            label_platform.store,
            sv.create_task,
            "owner",
            W,
            sc.TaskCreate(name="big", template="text-classification", labels=["a"], lines=lines, package_size=4),
        )
    assert err.value.field == "package_size"
    assert _do(label_platform.store, sv.list_tasks, "owner", W) == []


def test_packages_by_field_and_check_sampling(label_platform):
    lines = [{"data": {"source": f"{i}.jpg", "camera": "north" if i % 3 else "south"}} for i in range(9)]
    store = label_platform.store
    task = _do(
        store,
        sv.create_task,
        "owner",
        W,
        sc.TaskCreate(
            name="cams",
            template="image-classification",
            labels=["a"],
            lines=lines,
            package_by="camera",
            flow="label-check",
            check_ratio=0.5,
        ),
    )
    pkgs = _do(store, sv.list_packages, "owner", W, task.id)
    assert [(p.key, p.size) for p in pkgs] == [("south", 3), ("north", 6)]
    sampled = [sum(i.sampled for i in _do(store, sv.package_items, "owner", W, task.id, p.number)) for p in pkgs]
    assert sampled == [2, 3]  # ceil(50%)


def test_custom_templates_are_validated_data(label_platform):
    with pytest.raises(BadInput, match=r"questions\[0\]\.bind .* names no content component"):
        parse_spec(
            {
                "name": "x",
                "contents": [{"type": "text", "key": "body"}],
                "questions": [{"type": "spans", "title": "NER", "bind": "text"}],
            }
        )
    with pytest.raises(BadInput, match="unknown key"):
        parse_spec(
            {
                "name": "x",
                "contents": [{"type": "text"}],
                "questions": [{"type": "single", "title": "a", "colour": "red"}],
            }
        )
    with pytest.raises(BadInput, match="type"):
        parse_spec({"name": "x", "contents": [{"type": "hologram"}], "questions": [{"type": "text", "title": "a"}]})
    info = _do(
        label_platform.store,
        sv.create_template,
        "owner",
        W,
        {
            "name": "review",
            "contents": [{"type": "text", "key": "body"}],
            "questions": [
                {"type": "single", "title": "verdict", "labels": ["ok", "spam"]},
                {"type": "text", "title": "why", "required": False},
            ],
        },
    )
    assert info.kind == "custom" and [q["id"] for q in info.spec["questions"]] == ["1", "2"]
    with pytest.raises(Conflict):
        _do(
            label_platform.store,
            sv.create_template,
            "owner",
            W,
            {"name": "ner", "contents": [{"type": "text"}], "questions": [{"type": "text", "title": "a"}]},
        )
    task = _do(
        label_platform.store,
        sv.create_task,
        "owner",
        W,
        sc.TaskCreate(name="mod", template="review", lines=[{"data": {"body": "buy now!!!"}}]),
    )
    _do(label_platform.store, sv.claim, "owner", W, task.id, "label")
    answer(label_platform.store, "owner", task.id, 0, {"verdict": "spam"})
    item = _do(label_platform.store, sv.package_items, "owner", W, task.id, 1)[0]
    assert item.label == [{"questionId": "1", "data": "spam", "markTitle": "verdict", "type": "survey/value"}]
    ids = {t.id for t in _do(label_platform.store, sv.list_templates, "owner", W)}
    assert {
        "text-classification",
        "ner",
        "relation",
        "image-classification",
        "object-detection",
        "ocr",
        "video-classification",
        "audio-classification",
        "audio-segmentation",
        "asr",
        "review",
    } == ids


def test_prelabels_are_suggestions_not_answers(label_platform):
    store = label_platform.store
    task = _do(
        store,
        sv.create_task,
        "owner",
        W,
        sc.TaskCreate(name="pre", template="object-detection", labels=["cat"], lines=[{"data": {"source": "a.jpg"}}]),
    )
    n = _do(
        store,
        sv.attach_prelabels,
        "owner",
        W,
        task.id,
        sc.PrelabelBatch(
            source="model:yolo",
            items=[
                sc.Prelabel(
                    item=0, answer={"width": 10, "height": 10, "shapes": [{"box": [1, 1, 4, 4], "label": "cat"}]}
                )
            ],
        ),
    )
    assert n == 1
    item = _do(store, sv.list_items, "owner", W, task.id)[0]
    assert item.prelabel_source == "model:yolo" and item.prelabel[0]["data"][0]["value"][2] == [4, 4]
    assert item.label is None
    assert _do(store, sv.get_task, "owner", W, task.id).labeled == 0
    with pytest.raises(BadInput, match="unknown label 'dog'"):
        _do(
            store,
            sv.attach_prelabels,
            "owner",
            W,
            task.id,
            sc.PrelabelBatch(
                source="m",
                items=[
                    sc.Prelabel(
                        item=0, answer={"width": 10, "height": 10, "shapes": [{"box": [1, 1, 4, 4], "label": "dog"}]}
                    )
                ],
            ),
        )
