"""The week's new surfaces probed as a member of a low role would: EasyVision convert and import, the
PAI-TF command's ``-Dscript`` archive and its staged copy, a job's log filters and model, a pipeline
step's log ``tail``, and a serving instance's reach (open: a strict xfail).

Each path a member names goes through the one containment policy (the state folder, a link into it,
``..`` and folders outside the roots are 400s naming the field); an archive's members never land
outside the job's code nor bring a link along; and a PAI-TF submission leaves nothing of its archive
in the state folder, whether it is refused or its job has its code.
"""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pytest

from tests.fixtures.serving import PROBE_PROCESSOR
from tests.server.test_easyvision_api import local_examples

W = "/workspaces/default"
SECRET = "tok-owner-secret-0123456789"
ENTRY = "print('hello from the archive', flush=True)\n"


@pytest.fixture
def state(pai_root) -> Path:
    folder = pai_root / ".pai_lab"
    (folder / "server.json").write_text(json.dumps({"token": SECRET}))
    (pai_root / "data").mkdir(exist_ok=True)
    (pai_root / "data" / "state-link").symlink_to(folder)
    return folder


def _into_state(state: Path) -> dict[str, str]:
    return {
        "server.json": str(state / "server.json"),
        "relative into state": ".pai_lab/server.json",
        "link to the state": "data/state-link/server.json",
        "dot-dot into state": "data/../.pai_lab/server.json",
    }


def _tar(path: Path, members: list[tuple[tarfile.TarInfo, bytes | None]]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for info, data in members:
            if data is not None:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


def _file(name: str, text: str = ENTRY) -> tuple[tarfile.TarInfo, bytes]:
    return tarfile.TarInfo(name), text.encode()


def _link(name: str, target: str, hard: bool = False) -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type = tarfile.LNKTYPE if hard else tarfile.SYMTYPE
    info.linkname = target
    return info, None


def _staged(state: Path) -> list[Path]:
    folder = state / "scripts"
    return sorted(folder.iterdir()) if folder.exists() else []


async def _pai_tf(api, script: str, **extra):
    body = {"script": script, "entryFile": "pkg/main.py", "gpuRequired": 0, **extra}
    return await api("POST", f"{W}/jobs/pai-tf", body, user="dev")


# ------------------------------------------------------------------ EasyVision convert and import


async def test_convert_reads_and_writes_only_where_the_policy_allows(api, members, pai_root, state):
    await members()
    (pai_root / "ok.csv").write_text("")
    good = {"label_file": "ok.csv", "output_tfrecord": "out/shards", "convert_param_config": "--model_type DETECTION"}
    for what, bad in _into_state(state).items():
        status, err = await api("POST", f"{W}/labeling/convert", {**good, "label_file": bad}, user="labeladmin")
        assert status == 400 and err["error"]["field"] == "label_file", (what, err)
        target = bad.removesuffix("server.json") + "shards"
        status, err = await api("POST", f"{W}/labeling/convert", {**good, "output_tfrecord": target}, user="labeladmin")
        assert status == 400 and err["error"]["field"] == "output_tfrecord", (what, err)
        config = f"--model_type DETECTION --class_list_file {bad}"
        status, err = await api(
            "POST", f"{W}/labeling/convert", {**good, "convert_param_config": config}, user="labeladmin"
        )
        assert status == 400 and "server.json" in err["error"]["message"], (what, err)
    for scheme in ("local://", "memory://", "simplecache::file://"):
        status, err = await api(
            "POST", f"{W}/labeling/convert", {**good, "output_tfrecord": f"{scheme}{state}/x"}, user="labeladmin"
        )
        assert status == 400 and err["error"]["field"] == "output_tfrecord", (scheme, err)
    # SELF_DEFINED runs the member's code: never in the server
    config = "--model_type SELF_DEFINED --user_defined_converter_path conv.py --converter_class C"
    status, err = await api(
        "POST", f"{W}/labeling/convert", {**good, "convert_param_config": config}, user="labeladmin"
    )
    assert status == 400 and err["error"]["field"] == "options.model_type", err
    status, err = await api("POST", f"{W}/labeling/convert", good, user="guest")
    assert status == 403
    assert json.loads((state / "server.json").read_text()) == {"token": SECRET}
    assert not list(state.glob("*shards*")) and not list(state.glob("*.tfrecord"))


async def test_an_easyvision_import_base_cannot_lead_into_the_state(api, members, pai_root, state):
    await members()
    row = 'a.jpg,"[{""option"":""cat"",""type"":""image"",""id"":0}]"\n'
    text = "url,label\n" + row
    for what, base in {
        "state": str(state),
        "link": "data/state-link",
        "dot-dot": "data/..",
        "outside": "/etc",
    }.items():
        body = {"format": "easyvision", "name": "probe", "content": text.replace("a.jpg", "server.json")}
        if what == "outside":
            body["content"] = text.replace("a.jpg", "passwd")
        if what == "dot-dot":
            body["content"] = text.replace("a.jpg", ".pai_lab/server.json")
        status, err = await api("POST", f"{W}/labeling/imports", {**body, "base": base}, user="labeladmin")
        assert status == 400 and SECRET not in json.dumps(err), (what, err)
        assert err["error"]["field"] in ("content", "base"), (what, err)


async def test_convert_never_reads_a_huge_label_file_into_memory(api, members, tmp_path):
    await members()
    huge = tmp_path / "huge.csv"
    with open(huge, "wb") as f:  # sparse: reading it would take 1 GiB of memory
        f.truncate((1 << 30) + 1)
    body = {
        "label_file": str(huge),
        "output_tfrecord": str(tmp_path / "out"),
        "convert_param_config": "--model_type DETECTION",
    }
    status, err = await api("POST", f"{W}/labeling/convert", body, user="labeladmin")
    assert status == 400 and err["error"]["field"] == "label_file", err
    assert "over 1024 MiB" in err["error"]["message"], err


async def test_an_import_never_reads_a_huge_mask_into_memory(api, members, tmp_path):
    await members()
    huge = tmp_path / "huge.png"
    with open(huge, "wb") as f:  # sparse: no disk is used, but reading it would take 513 MiB of memory
        f.truncate(513 << 20)
    text = local_examples(tmp_path)["segmentation"].replace(str(tmp_path / "a.png"), str(huge))
    body = {"format": "easyvision", "name": "huge", "content": text, "labels": ["background", "cat"]}
    status, err = await api("POST", f"{W}/labeling/imports", body, user="labeladmin")
    assert status == 400 and err["error"]["field"] == "content", err
    assert "over 512 MiB" in err["error"]["message"] and "huge.png" in err["error"]["message"], err


# ------------------------------------------------------------------ PAI-TF -Dscript


@pytest.mark.parametrize(
    "members_, field",
    [
        ([_file("pkg/main.py"), _file("../escape.py")], "script"),
        ([_file("pkg/main.py"), _file("/tmp/escape.py")], "script"),
        ([_link("pkg/main.py", "/")], "entryFile"),  # links stay behind: no entry
        ([_file("pkg/x.py"), _link("pkg/main.py", "../../../.pai_lab/server.json")], "entryFile"),
        ([_file("pkg/x.py"), _link("pkg/main.py", "pkg/x.py", hard=True)], "entryFile"),
    ],
    ids=["dot-dot member", "absolute member", "link as the entry", "link into the state", "hard link"],
)
async def test_an_archive_lands_only_inside_the_job_code(api, members, pai_root, state, members_, field):
    await members()
    archive = _tar(pai_root / "code.tar.gz", members_)
    status, err = await _pai_tf(api, str(archive))
    assert status == 400 and err["error"]["field"] == field, err
    assert not (pai_root / "escape.py").exists() and not Path("/tmp/escape.py").exists()
    assert _staged(state) == []


async def test_a_script_in_the_state_is_refused(api, members, state):
    await members()
    for what, bad in _into_state(state).items():
        status, err = await _pai_tf(api, bad)
        assert status == 400 and err["error"]["field"] == "script", (what, err)
    status, err = await _pai_tf(api, "data/code.tar.gz", buckets=".pai_lab")
    assert status == 400 and err["error"]["field"] == "buckets", err


async def test_a_refused_submission_leaves_nothing_of_its_archive_in_the_state(api, members, pai_root, state):
    """The archive is unpacked before the rest of the job is checked: a refusal after that (here an input
    table that is no dataset) must take the unpacked copy away, or every refused call grows the state."""
    await members()
    archive = _tar(pai_root / "code.tar.gz", [_file("pkg/main.py"), _file("pkg/big.bin", "x" * 100_000)])
    for _ in range(3):
        status, err = await _pai_tf(api, str(archive), tables="odps://proj/tables/no_such_dataset")
        assert status == 400 and err["error"]["field"] == "tables", err
    assert _staged(state) == []


async def test_a_job_s_staged_archive_lives_and_goes_with_the_job(api, members, pai_root, state):
    await members()
    marker = "staged-marker-0123456789"
    archive = _tar(pai_root / "code.tar.gz", [_file("pkg/main.py", f"print({marker!r}, flush=True)\n")])

    def copies() -> list[Path]:
        return [p for p in state.rglob("main.py") if marker in p.read_text()]

    status, job = await _pai_tf(api, str(archive))
    assert status == 201, job
    while job["state"] not in ("Succeeded", "Failed", "Stopped"):
        status, job = await api("GET", f"{W}/jobs/{job['id']}", params={"wait": "30"}, user="dev")
        assert status == 200, job
    assert job["state"] == "Succeeded", job["reason"]
    assert copies() and all(state / "jobs" / job["id"] in p.parents for p in copies()), copies()
    status, _ = await api("DELETE", f"{W}/jobs/{job['id']}", user="dev")
    assert status == 204
    assert copies() == [] and _staged(state) == []


# ------------------------------------------------------------------ pipeline step logs


async def test_a_step_log_tail_is_bounded(api, members):
    await members()
    for tail in ("10001", "-1", "99999999999999999999"):
        status, err = await api(
            "GET", f"{W}/pipelines/runs/r-nothere/logs", params={"node": "a", "tail": tail}, user="guest"
        )
        assert status == 400 and err["error"]["field"] == "tail", (tail, err)


async def test_a_job_s_log_and_metric_filters_are_bounded(api, members):
    """A job's stdout/stderr lines and metrics are filtered by pod: a name, at most 128 characters."""
    await members()
    for route in ("logs", "metrics"):
        status, err = await api(
            "GET", f"{W}/jobs/dlc-20200101000000-nothere/{route}", params={"pod": "p" * 5000}, user="guest"
        )
        assert status == 400 and err["error"]["field"] == "pod", (route, err)
    status, err = await api(
        "GET", f"{W}/jobs/dlc-20200101000000-nothere/logs", params={"stream": "stdin"}, user="guest"
    )
    assert status == 400 and err["error"]["field"] == "stream", err


# ------------------------------------------------------------------ serving instances, sandboxed


def test_a_member_s_processor_cannot_read_the_server_token(live_server, unique_name):
    """A member's python processor runs in the jobs' sandbox (the team server has several users): the state
    folder is hidden (server.json is not there), the control plane's processes are not in its /proc (its
    command line holds the token), the root is read-only, no credential is in its environment; its own
    folder reads as usual."""
    import requests

    owner = live_server.client().create_workspace(unique_name("serve"))
    owner.members.add("dev", ["AlgorithmDeveloper"])
    folder = live_server.root / unique_name("reader")
    folder.mkdir()
    (folder / "app.py").write_text(PROBE_PROCESSOR)
    dev = live_server.client("dev").workspace(owner.name)
    svc = dev.services.create(
        {
            "name": "test_reader",
            "processor_type": "python",
            "processor_path": str(folder),
            "processor_entry": "app.py",
            "metadata": {"instance": 1},
        }
    )
    secret = str(live_server.root / ".pai_lab" / "server.json")
    server_cmdline = f"/proc/{live_server.proc.pid}/cmdline"
    own = str(folder / "app.py")
    try:
        for _ in range(120):  # until the instance answers
            answer = requests.post(
                svc.endpoint,
                json={"read": [secret, server_cmdline, own], "write": str(live_server.root / "planted.txt")},
                headers={"Authorization": svc.token},
                timeout=30,
            )
            if answer.status_code == 200:
                break
            import time

            time.sleep(0.5)
        assert answer.status_code == 200, answer.text
        assert live_server.token not in answer.text
        seen = answer.json()
        assert seen[secret].startswith("refused: ") and "No such file" in seen[secret], seen
        assert seen[server_cmdline].startswith("refused: "), seen
        assert "class Reader" in seen[own], seen
        assert seen["write"].startswith("refused: ") and not (live_server.root / "planted.txt").exists(), seen
        assert [k for k in seen["env"] if "TOKEN" in k or "SECRET" in k] == [], seen
        # what `eascmd w`, the memory watchdog and the autoscaler look at is the instance itself, not bubblewrap
        import psutil

        instance = psutil.Process(svc.instances()[0].pid)
        assert instance.cmdline()[1:3] == ["-m", "pai_lab.serving.instance"], instance.cmdline()
        assert any("bwrap" in p.name() for p in instance.parents()), [p.name() for p in instance.parents()]
    finally:
        svc.delete()


# ------------------------------------------------------------------ a job's model, through a link

SAVE = (
    "import os; d = os.environ['PAI_LAB_MODEL_DIR']; os.makedirs(d, exist_ok=True); "
    "open(os.path.join(d, 'saved_model.pb'), 'wb').write(b'graph')"
)


async def _finished(api, workspace: str, body: dict, user: str) -> dict:
    status, job = await api("POST", f"/workspaces/{workspace}/jobs", {"workers": 1, **body}, user=user)
    assert status == 201, job
    while job["state"] not in ("Succeeded", "Failed", "Stopped"):
        status, job = await api("GET", f"/workspaces/{workspace}/jobs/{job['id']}", params={"wait": "30"}, user=user)
        assert status == 200, job
    return job


async def test_a_job_cannot_register_another_workspace_s_model_through_a_link(api, members):
    """A job's model is registered without the policy (it is the job's own output); a rank that links its
    model folder to another job's model must not get that model registered in its workspace."""
    await members()
    theirs = await _finished(api, "default", {"name": "theirs", "command": f'python -c "{SAVE}"'}, "dev")
    assert theirs["state"] == "Succeeded" and theirs["model"], theirs
    status, model = await api("GET", f"{W}/models/{theirs['model']}", user="dev")
    assert status == 200, model
    status, _ = await api("POST", "/workspaces", {"name": "other"})
    assert status == 201
    await members("other")
    link = (
        "import os; d = os.environ['PAI_LAB_MODEL_DIR']; os.makedirs(d, exist_ok=True); "
        f"os.symlink({model['path']!r}, os.path.join(d, 'x'))"
    )
    mine = await _finished(api, "other", {"name": "mine", "command": f'python -c "{link}"'}, "dev")
    assert mine["state"] == "Succeeded", mine["reason"]
    assert not mine["model"], mine
    status, listed = await api("GET", "/workspaces/other/models", user="dev")
    assert status == 200 and listed == [], listed
