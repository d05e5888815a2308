"""dlc config, completion and get images, and --*_image choosing one of those images, through the CLI
against a real `pai server`, with the manual's examples."""

from __future__ import annotations

import json
import stat
import subprocess
import sys
import uuid

import pytest

# the manual's submit example names a cloud registry image
CLOUD_IMAGE = "registry-vpc.cn-beijing.aliyuncs.com/pai-dlc/tensorflow-training:1.12.2PAI-cpu-py27-ubuntu16.04"
HERE = f"local/python:{sys.version_info.major}.{sys.version_info.minor}"


@pytest.fixture
def workspace(live_server):
    name = f"dlc{uuid.uuid4().hex[:8]}"
    live_server.client().create_workspace(name)
    return name


def complete(line: str) -> list[str]:
    """What bash offers for ``line`` (the last word is being typed), with `pai dlc completion bash` sourced."""
    script = subprocess.run(
        [sys.executable, "-m", "pai_lab", "dlc", "completion", "bash"], capture_output=True, text=True, check=True
    ).stdout
    words = line.split(" ")
    program = (
        script + "\nCOMP_WORDS=(" + " ".join(f"'{w}'" for w in words) + f")\nCOMP_CWORD={len(words) - 1}\n"
        '_pai_complete\nprintf "%s\\n" "${COMPREPLY[@]}"\n'
    )
    done = subprocess.run(["bash", "-c", program], capture_output=True, text=True, check=True)
    return [w for w in done.stdout.splitlines() if w]


def test_completion_offers_verbs_kinds_and_flags_at_each_level():
    assert "dlc" in complete("pai ") and "eascmd" in complete("pai ")
    assert set(complete("pai dlc ")) >= {"completion", "config", "create", "delete", "get", "logs", "stop", "submit"}
    assert complete("pai dlc su") == ["submit"]
    assert set(complete("pai dlc get ")) >= {"images", "code_source", "data_source"}
    assert set(complete("pai dlc submit tfjob --worker")) == {"--workers", "--worker_image", "--worker_spec"}
    assert set(complete("pai eascmd resource ")) >= {"ls", "desc", "li", "network"}


def test_completion_for_zsh_and_an_unknown_shell(cli):
    rc, out, _ = cli("dlc", "completion", "zsh")
    assert rc == 0 and "bashcompinit" in out and "complete -F _pai_complete pai" in out
    rc, _, err = cli("dlc", "completion", "fish")
    assert rc == 2 and "bash and zsh" in err


def test_config_saves_the_profile_whose_workspace_every_verb_uses(cli, home, workspace, tmp_path):
    rc, out, err = cli(
        "dlc",
        "config",
        "--access_id",
        "LTAI5tExample",
        "--access_key",
        "secretExample",
        "--endpoint",
        "pai-dlc.cn-shanghai.aliyuncs.com",
        "--region",
        "cn-shanghai",
        "-w",
        workspace,
    )
    profile = home / ".dlc" / "config"
    assert rc == 0, err
    assert out.strip() == f"Configuration saved to: {profile}"
    assert stat.S_IMODE(profile.stat().st_mode) == 0o600

    data = tmp_path / "data"
    data.mkdir()
    (data / "a.txt").write_text("a")
    rc, out, err = cli("dlc", "create", "data_source", "--display_name", "new_test_1", "--file_system_id", str(data))
    assert rc == 0, err
    rc, out, _ = cli("dlc", "get", "data_source", "-w", workspace)
    assert "new_test_1" in out
    rc, out, _ = cli("dlc", "get", "data_source", "-w", "default")
    assert "new_test_1" not in out


def test_get_images_lists_this_python_in_the_manuals_columns(cli):
    rc, out, err = cli("dlc", "get", "images")
    assert rc == 0, err
    header = [h.strip() for h in out.splitlines()[1].strip("|").split("|")]
    assert header == ["ImageUrl", "ImageUrlVpc", "ImageProvider", "Accelerator", "Framework"]
    assert f"| {HERE} " in out and sys.executable in out

    rc, out, _ = cli("dlc", "get", "images", "--framework=TFJob", "--json")
    assert rc == 0 and HERE in [i["image_url"] for i in json.loads(out)]  # the tests run with TensorFlow
    rc, _, err = cli("dlc", "get", "images", "--device=tpu")
    assert rc == 2 and "--device" in err


def test_an_image_that_is_no_local_environment_is_refused_naming_the_flag(cli, workspace, tmp_path):
    rc, _, err = cli(
        "dlc",
        "submit",
        "tfjob",
        "--name=test_2021",
        "--command=python -c 'print(1)'",
        "--workers=1",
        f"--worker_image={CLOUD_IMAGE}",
        "-w",
        workspace,
    )
    assert rc == 2 and "--worker_image" in err and "pai dlc get images" in err

    job_file = tmp_path / "job.txt"
    job_file.write_text(f"name=test_2021\ncommand=python -c 'print(1)'\nworkers=1\nps=1\nps_image={CLOUD_IMAGE}\n")
    rc, _, err = cli("dlc", "submit", "tfjob", f"--job_file={job_file}", "-w", workspace)
    assert rc == 2 and "--ps_image" in err

    rc, out, _ = cli("dlc", "get", "job", "-w", workspace, "--json")
    assert json.loads(out) == []  # nothing was submitted

    rc, out, err = cli(
        "dlc",
        "submit",
        "tfjob",
        "--name=here",
        "--command=python -c 'print(1)'",
        "--workers=1",
        f"--worker_image={HERE}",
        "--detach",
        "-w",
        workspace,
    )
    assert rc == 0 and "JobId" in out, err
