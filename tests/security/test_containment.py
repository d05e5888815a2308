"""One containment policy for every field that names a path or a URL, probed as a member would.

Each path-taking field is sent the server's state folder, files in it, a link into it, a ``..``
path, folders outside the allowed roots (existing and missing) and an http URL: every one is a
4xx naming the field, the outside ones with one message whether or not the path exists, and
nothing of the state is read or written.
"""

from __future__ import annotations

import json
import os
import stat
import tempfile
from pathlib import Path

import pytest

from tests.conftest import start_pai_server

W = "/workspaces/default"
SECRET = "tok-owner-secret-0123456789"


@pytest.fixture
def state(pai_root) -> Path:
    """The state folder, with a server.json as `pai server` writes it (the owner's token)."""
    folder = pai_root / ".pai_lab"
    (folder / "server.json").write_text(json.dumps({"token": SECRET}))
    return folder


@pytest.fixture
def bad_paths(pai_root, state) -> dict[str, str]:
    outside = Path(tempfile.mkdtemp(prefix="pai-outside-"))  # pytest's own folder is allowed to the test server
    (outside / "data.png").write_bytes(b"x")
    (pai_root / "data").mkdir()
    (pai_root / "data" / "state-link").symlink_to(state)
    (pai_root / "data" / "token-link").symlink_to(state / "server.json")
    return {
        "state folder": str(state),
        "server.json": str(state / "server.json"),
        "pai.db": str(state / "pai.db"),
        "pai.db-wal": str(state / "pai.db-wal"),
        "relative into state": ".pai_lab/server.json",
        "link to the state": "data/state-link",
        "link to a secret": "data/token-link",
        "dot-dot into state": "data/../.pai_lab/server.json",
        "dot-dot outside": os.path.relpath(outside, pai_root),
        "outside, existing": str(outside),
        "outside, missing": str(outside / "nope"),
        "http": "http://127.0.0.1:9/steal.png",
    }


async def _job(api, value, key):
    return await api(
        "POST", f"{W}/jobs", {"name": "probe", "command": "python -c pass", "workers": 1, key: value}, user="dev"
    )


# field name -> (how to send the value, who sends it, values that do not apply to the field)
async def _dataset_source(api, value):
    return await api("POST", f"{W}/datasets", {"name": "probe", "source": value, "scan": True}, user="labeladmin")


async def _dataset_items(api, value):
    return await api(
        "POST", f"{W}/datasets", {"name": "probe", "items": [{"data": {"source": value}}]}, user="labeladmin"
    )


async def _manifest_items(api, value, pai_root):
    (pai_root / "probe.manifest").write_text(json.dumps({"data": {"source": value}}) + "\n")
    return await api("POST", f"{W}/datasets", {"name": "probe", "source": "probe.manifest"}, user="labeladmin")


async def _version_items(api, value):
    status, body = await api(
        "POST", f"{W}/datasets", {"name": "base", "items": [{"data": {"source": "a text"}}]}, user="labeladmin"
    )
    assert status in (201, 409), body
    return await api("POST", f"{W}/datasets/base/versions", {"items": [{"data": {"source": value}}]}, user="labeladmin")


async def _code_repo(api, value):
    return await api("POST", f"{W}/code_sources", {"display_name": "probe", "code_repo": value}, user="labeladmin")


async def _export_to(api, value):
    status, body = await api(
        "POST",
        f"{W}/labeling/tasks",
        {"name": "probe", "template": "text-classification", "labels": ["a"], "lines": [{"data": {"source": "x"}}]},
        user="labeladmin",
    )
    assert status in (201, 409), body
    return await api("POST", f"{W}/labeling/tasks/probe/export", {"format": "itag", "to": value}, user="labeladmin")


async def _task_lines(api, value):
    return await api(
        "POST",
        f"{W}/labeling/tasks",
        {
            "name": "probe_lines",
            "template": "image-classification",
            "labels": ["a"],
            "lines": [{"data": {"source": "ok.png"}}, {"data": {"source": value}}],
        },
        user="labeladmin",
    )


async def _import_content(api, value):
    return await api(
        "POST",
        f"{W}/labeling/imports",
        {
            "name": "probe_import",
            "format": "itag",
            "template": "image-classification",
            "labels": ["a"],
            "content": json.dumps({"data": {"source": value}}),
        },
        user="labeladmin",
    )


async def _media(api, value):
    # the item's shown keys are checked when the task is created; the route checks whatever key it is asked
    status, body = await api(
        "POST",
        f"{W}/labeling/tasks",
        {
            "name": "media",
            "template": "image-classification",
            "labels": ["a"],
            "lines": [{"data": {"source": "ok.png", "extra": value}}],
        },
        user="labeladmin",
    )
    assert status == 201, body
    try:
        return await api("GET", f"{W}/labeling/tasks/media/items/0/media", params={"key": "extra"}, user="labeladmin")
    finally:
        await api("DELETE", f"{W}/labeling/tasks/media", user="labeladmin")


async def _model_path(api, value):
    return await api("POST", f"{W}/models", {"name": "probe", "path": value}, user="dev")


async def _service(api, value, key, python_processor):
    spec = {"name": "test_probe", "metadata": {"instance": 0}}
    if key == "model_path":
        spec.update(model_path=value, processor="tensorflow_cpu_2.7")
    else:
        spec.update(processor_type="python", processor_path=str(python_processor), processor_entry="app.py")
        spec[key] = value
    return await api("POST", f"{W}/services", spec, user="dev")


FIELDS = {
    "source": (_dataset_source, "source"),
    "items": (_dataset_items, "items"),
    "manifest items": (_manifest_items, "source"),
    "version items": (_version_items, "items"),
    "code_repo": (_code_repo, "code_repo"),
    "export to": (_export_to, "to"),
    "task lines": (_task_lines, "lines"),
    "import content": (_import_content, "content"),
    "media": (_media, "source"),
    "job code_source": (lambda api, v: _job(api, v, "code_source"), "code_source"),
    "job hyperParameters": (lambda api, v: _job(api, v, "hyperParameters"), "hyperParameters"),
    "job checkpointDir": (lambda api, v: _job(api, v, "checkpointDir"), "checkpointDir"),
    "model register": (_model_path, "path"),
    "model_path": (None, "model_path"),
    "processor_path": (None, "processor_path"),
    "warm_up_data_path": (None, "warm_up_data_path"),
}
# an http URL is no local path for these: git URLs are code, and checkpoints are written by the ranks
NOT_URLS = {"code_repo", "job code_source", "job checkpointDir"}


@pytest.mark.parametrize("field", list(FIELDS))
async def test_every_path_field_refuses_the_state_links_dot_dot_outside_and_urls(
    api, members, pai_root, state, bad_paths, field, python_processor
):
    await members("default")
    send, name = FIELDS[field]
    if send is None:

        async def send(api, value):
            return await _service(api, value, name, python_processor)
    elif field == "manifest items":

        async def send(api, value, _send=send):
            return await _send(api, value, pai_root)

    before = {p.name: (p.stat().st_size, p.stat().st_mtime_ns) for p in state.iterdir() if p.name != "pai.db-wal"}
    messages = {}
    for case, value in bad_paths.items():
        if case == "http" and field in NOT_URLS:
            continue
        status, body = await send(api, value)
        assert 400 <= status < 500, (field, case, status, body)
        assert body["error"]["field"] == name, (field, case, body)
        assert SECRET not in json.dumps(body), (field, case)
        messages[case] = body["error"]["message"]
    # a refusal is no oracle: an outside path is answered alike whether it exists or not
    existing, missing = bad_paths["outside, existing"], bad_paths["outside, missing"]
    assert messages["outside, existing"].replace(existing, "X") == messages["outside, missing"].replace(missing, "X")
    assert "outside the allowed folders" in messages["outside, existing"]
    # nothing of the state was written, and the refused probes left no dataset behind
    after = {p.name: (p.stat().st_size, p.stat().st_mtime_ns) for p in state.iterdir() if p.name != "pai.db-wal"}
    assert {k: v for k, v in after.items() if k in ("server.json",)} == {"server.json": before["server.json"]}
    assert (state / "server.json").read_text() == json.dumps({"token": SECRET})
    status, listed = await api("GET", f"{W}/datasets", user="guest")
    assert status == 200 and "probe" not in [d["name"] for d in listed]
    status, tasks = await api("GET", f"{W}/labeling/tasks", user="guest")
    assert status == 200 and not {"probe_lines", "probe_import"} & {t["name"] for t in tasks}


async def test_a_scan_of_the_root_never_lists_the_state_or_links_into_it(api, members, pai_root, state):
    await members("default")
    (pai_root / "pics").mkdir()
    (pai_root / "pics" / "ok.txt").write_text("fine")
    (pai_root / "pics" / "token.txt").symlink_to(state / "server.json")
    (pai_root / "pics" / "db").symlink_to(state)
    status, ds = await api(
        "POST", f"{W}/datasets", {"name": "everything", "source": ".", "scan": True}, user="labeladmin"
    )
    assert status == 201, ds
    status, page = await api("GET", f"{W}/datasets/everything/items", params={"limit": "1000"}, user="guest")
    keys = [i["key"] for i in page["items"]]
    assert "pics/ok.txt" in keys
    assert not [k for k in keys if ".pai_lab" in k or k.startswith("pics/token") or k.startswith("pics/db")], keys
    for key in ("pics/token.txt", ".pai_lab/server.json"):
        status, body = await api("GET", f"{W}/datasets/everything/content", params={"key": key}, user="guest")
        assert 400 <= status < 500 and SECRET not in str(body), (key, body)


async def test_the_media_route_reads_urls_only_under_allowed_prefixes(api, members, pai_root):
    await members("default")
    metadata = "http://169.254.169.254/latest/meta-data/"
    status, body = await api(
        "POST",
        f"{W}/labeling/tasks",
        {
            "name": "remote",
            "template": "image-classification",
            "labels": ["a"],
            "lines": [{"data": {"source": metadata}}],
        },
        user="labeladmin",
    )
    assert status == 400 and body["error"]["field"] == "lines", body
    assert "line 1" in body["error"]["message"] and "allowed_url_prefixes" in body["error"]["message"]
    status, body = await api(
        "POST",
        f"{W}/labeling/tasks",
        {
            "name": "remote",
            "template": "image-classification",
            "labels": ["a"],
            "lines": [{"data": {"source": "a.png", "url": metadata}}],
        },
        user="labeladmin",
    )
    assert status == 201, body
    status, body = await api(
        "GET", f"{W}/labeling/tasks/remote/items/0/media", params={"key": "url"}, user="labeladmin"
    )
    assert status == 400 and body["error"]["field"] == "source"
    assert "allowed_url_prefixes" in body["error"]["message"]


async def test_inline_lines_of_texts_and_allowed_places_are_accepted(api, members, pai_root):
    await members("default")
    (pai_root / "pics").mkdir()
    (pai_root / "pics" / "a.png").write_bytes(b"x")
    lines = [
        {"data": {"source": "pics/a.png"}},
        {"data": {"source": str(pai_root / "pics" / "a.png")}},
        {"data": {"source": "s3://bucket/b.png"}},
        {"data": {"source": "pics/not-yet.png"}},
    ]
    status, body = await api(
        "POST",
        f"{W}/labeling/tasks",
        {"name": "pics", "template": "image-classification", "labels": ["a"], "lines": lines},
        user="labeladmin",
    )
    assert status == 201, body
    texts = [{"data": {"source": "a text with /slashes/ and http://words in it"}}, {"data": {"source": "x"}}]
    status, body = await api(
        "POST",
        f"{W}/labeling/tasks",
        {"name": "texts", "template": "text-classification", "labels": ["a"], "lines": texts},
        user="labeladmin",
    )
    assert status == 201, body


async def test_an_export_onto_the_store_is_refused_and_the_server_still_works(api, members, pai_root, state):
    await members("default")
    status, task = await api(
        "POST",
        f"{W}/labeling/tasks",
        {"name": "t", "template": "text-classification", "labels": ["a"], "lines": [{"data": {"source": "x"}}]},
        user="labeladmin",
    )
    assert status == 201, task
    db = state / "pai.db"
    size = db.stat().st_size
    for to in (str(db), ".pai_lab/pai.db", "data/../.pai_lab/pai.db", str(state / "new.manifest"), str(state)):
        status, body = await api(
            "POST", f"{W}/labeling/tasks/t/export", {"format": "itag", "to": to, "overwrite": True}, user="labeladmin"
        )
        assert status == 400 and body["error"]["field"] == "to", (to, body)
    assert db.stat().st_size >= size and not (state / "new.manifest").exists()
    assert not [p for p in state.iterdir() if ".tmp-" in p.name]
    status, listed = await api("GET", f"{W}/labeling/tasks", user="guest")
    assert status == 200 and [t["name"] for t in listed] == ["t"]


async def test_an_export_never_overwrites_unless_asked(api, members, pai_root):
    await members("default")
    status, task = await api(
        "POST",
        f"{W}/labeling/tasks",
        {"name": "t", "template": "text-classification", "labels": ["a"], "lines": [{"data": {"source": "x"}}]},
        user="labeladmin",
    )
    assert status == 201, task
    target = pai_root / "out" / "t.manifest"
    target.parent.mkdir()
    target.write_text("my notes\n")
    status, body = await api(
        "POST", f"{W}/labeling/tasks/t/export", {"format": "itag", "to": "out/t.manifest"}, user="labeladmin"
    )
    assert status == 409 and body["error"]["field"] == "to" and "overwrite" in body["error"]["message"], body
    assert target.read_text() == "my notes\n"
    status, body = await api(
        "POST",
        f"{W}/labeling/tasks/t/export",
        {"format": "itag", "to": "out/t.manifest", "overwrite": True},
        user="labeladmin",
    )
    assert status == 200, body
    assert target.read_text() == '{"data":{"source":"x"}}\n'
    assert sorted(p.name for p in target.parent.iterdir()) == ["t.manifest"]  # no temporary left beside it


def test_the_state_folder_is_0700_and_its_secrets_0600(tmp_path):
    old = os.umask(0o022)  # the common umask: files would be world-readable by default
    try:
        server = start_pai_server(tmp_path / "root")
    finally:
        os.umask(old)
    try:
        state = tmp_path / "root" / ".pai_lab"
        assert stat.S_IMODE(state.stat().st_mode) == 0o700
        for name in ("pai.db", "pai.db-wal", "pai.db-shm", "server.json"):
            path = state / name
            if name != "server.json" and not path.exists():
                continue  # -wal/-shm exist only while the store is open in WAL mode
            assert stat.S_IMODE(path.stat().st_mode) == 0o600, name
        assert (state / "pai.db").exists() and (state / "server.json").exists()
    finally:
        server.stop()


def test_the_policy_reads_the_samples_but_never_writes_there_and_guards_a_store_kept_elsewhere(tmp_path):
    from pai_lab.errors import BadInput
    from pai_lab.platform import Platform
    from pai_lab.security import Containment

    data = tmp_path / "shared"
    data.mkdir()
    platform = Platform(
        tmp_path / "root", f"sqlite:///{data / 'store.db'}", owner="owner", settings={"allowed_roots": [str(data)]}
    ).start()
    policy = Containment.from_platform(platform)
    samples = platform.state_dir / "samples" / "digits"
    samples.mkdir(parents=True)
    assert policy.resolve(str(samples), "source") == samples.resolve()
    with pytest.raises(BadInput) as refused:
        policy.target(str(samples / "x.manifest"), "to")
    assert refused.value.field == "to"
    for secret in ("store.db", "store.db-wal"):  # the store is a secret wherever it is configured
        with pytest.raises(BadInput):
            policy.resolve(str(data / secret), "source", must_exist=False)
    (data / "ok.csv").write_text("a\n")
    assert policy.resolve(str(data / "ok.csv"), "source") == (data / "ok.csv").resolve()
    assert stat.S_IMODE((data / "store.db").stat().st_mode) == 0o600
