"""The PAI-TF command's parameters as a job spec, and -Dscript staged as the job's code."""

from __future__ import annotations

import io
import json
import tarfile

import pytest

from pai_lab.errors import BadInput, Conflict
from pai_lab.training import spec as specs
from pai_lab.training import tf_command


def test_cluster_json_has_pais_units_and_defaults():
    roles = tf_command.cluster_roles('{"ps":{"count":2,"cpu":1200,"memory":10000},"worker":{"count":8,"gpu":100}}')
    assert roles["ps"] == {"count": 2, "cpu": 1200, "gpu": 0, "memory": 10000}
    assert roles["worker"] == {"count": 8, "cpu": 600, "gpu": 100, "memory": 30000}
    # a worker's gpu of 0 is raised to one card where there are GPUs; without any, it runs on CPU
    assert tf_command.cluster_roles({"worker": {"count": 1, "gpu": 0}})["worker"]["gpu"] == 100
    assert tf_command.cluster_roles({"worker": {"count": 1}}, gpus_available=False)["worker"]["gpu"] == 0


def test_the_manuals_deepfm_command_becomes_roles_and_resources():
    values, notes = tf_command.job_values(
        {
            "script": "oss_free/deepfm_pai_ctr.py",
            "cluster": '{"ps":{"count":2,"cpu":1200,"memory":10000},"worker":{"count":8,"cpu":1200,"gpu":100,'
            '"memory":30000}}',
            "userDefinedParameters": "--task_type='train' --model='deepfm'",
            "arn": "acs:ram::1:role/x",
        },
        gpus_available=True,
    )
    spec = specs.build_spec(values)
    assert (spec.workers, spec.ps, spec.command) == (8, 2, "python deepfm_pai_ctr.py")
    assert specs.parse_resources(spec.worker_spec, "worker_spec") == specs.Resources(12, 30000 / 1024, 1)
    assert specs.parse_resources(spec.ps_spec, "ps_spec") == specs.Resources(12, 10000 / 1024, 0)
    assert spec.userDefinedParameters == "--task_type='train' --model='deepfm'"
    assert any(n.startswith("-Darn") for n in notes)


@pytest.mark.parametrize(
    ("params", "field", "words"),
    [
        ({"cluster": "{ps:1}"}, "cluster", "not JSON"),
        ({"cluster": '{"ps":{"count":1}}'}, "cluster", "needs a worker role"),
        ({"cluster": '{"worker":{"count":2,"disk":3}}'}, "cluster", "unknown key 'disk'"),
        ({"cluster": '{"worker":{"gpu":100}}'}, "cluster", "worker.count is required"),
        ({"cluster": '{"worker":{"count":1,"gpu":50}}'}, "cluster", "100 = 1 GPU"),
        ({"gpuRequired": "abc"}, "gpuRequired", "whole number"),
        ({"gpuRequired": "100", "cluster": '{"worker":{"count":1}}'}, "gpuRequired", "single-machine"),
        ({"script": "code.tar.gz"}, "entryFile", "required"),
        ({"script": "code.tar.gz", "entryFile": "../up.py"}, "entryFile", "inside the script archive"),
        ({"enableDynamicCluster": "maybe"}, "enableDynamicCluster", "true or false"),
    ],
)
def test_bad_parameters_are_refused_naming_the_flag(params, field, words):
    with pytest.raises(BadInput) as caught:
        tf_command.job_values({"script": "main.py", **params}, gpus_available=False)
    assert caught.value.field == field and words in caught.value.message


def test_gpus_on_a_cluster_without_any_are_a_conflict_naming_the_flag():
    with pytest.raises(Conflict) as caught:
        tf_command.job_values({"script": "main.py", "gpuRequired": "100"}, gpus_available=False)
    assert caught.value.status == 409 and caught.value.field == "gpuRequired"
    assert "-DgpuRequired=0" in caught.value.message
    with pytest.raises(Conflict) as caught:
        tf_command.job_values({"script": "m.py", "cluster": '{"worker":{"count":1,"gpu":100}}'}, gpus_available=False)
    assert caught.value.field == "cluster"
    values, _ = tf_command.job_values({"script": "main.py", "gpuRequired": "0"}, gpus_available=False)
    assert values["worker_spec"] == "gpu=0"


def _tar(path, files: dict[str, bytes]):
    with tarfile.open(path, "w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def test_a_tarball_is_unpacked_with_its_entry_and_nothing_outside(tmp_path):
    archive = _tar(tmp_path / "code.tar.gz", {"pkg/main.py": b"print(1)\n", "pkg/util.py": b"X = 1\n"})
    found = tf_command.stage_script(archive, "pkg/main.py", tmp_path / "out")
    assert found.read_text() == "print(1)\n" and (tmp_path / "out" / "pkg" / "util.py").is_file()
    with pytest.raises(BadInput, match="not in -Dscript"):
        tf_command.stage_script(archive, "pkg/other.py", tmp_path / "out2")
    evil = _tar(tmp_path / "evil.tar.gz", {"../escape.py": b"x"})
    with pytest.raises(BadInput, match="outside the job's code"):
        tf_command.stage_script(evil, "escape.py", tmp_path / "out3")
    assert not (tmp_path / "escape.py").exists()


def test_an_archive_bomb_is_refused_before_it_fills_the_disk(tmp_path):
    bomb = _tar(tmp_path / "bomb.tar.gz", {"main.py": b"pass\n", "zeros.bin": bytes(40 << 20)})
    assert bomb.stat().st_size < 1 << 20
    with pytest.raises(BadInput, match="unpacks to more than") as caught:
        tf_command.stage_script(bomb, "main.py", tmp_path / "out")
    assert caught.value.field == "script"
    assert not (tmp_path / "out" / "zeros.bin").exists()


def test_a_single_py_and_a_folder_are_copied(tmp_path):
    script = tmp_path / "train.py"
    script.write_text("print('hi')\n")
    assert tf_command.stage_script(script, "train.py", tmp_path / "a").read_text() == "print('hi')\n"
    (tmp_path / "proj").mkdir()
    (tmp_path / "proj" / "main.py").write_text(json.dumps(1))
    assert tf_command.stage_script(tmp_path / "proj", "main.py", tmp_path / "b").is_file()


def test_buckets_reach_the_script_after_the_platforms_own_and_tables_pass_through():
    values, _ = tf_command.job_values(
        {
            "script": "cifar_pai.py",
            "buckets": "/data/cifar-10-batches-py/",
            "userDefinedParameters": "--epochs=2",
            "tables": "odps://lab/tables/a,odps://lab/tables/b",
        },
        gpus_available=False,
    )
    spec = specs.build_spec(values)
    assert spec.userDefinedParameters == "--buckets=/data/cifar-10-batches-py/ --epochs=2"
    assert spec.tables == ["odps://lab/tables/a", "odps://lab/tables/b"]


def test_an_s3_checkpoint_dir_and_the_watchdog_pass_as_given():
    values, _ = tf_command.job_values(
        {"script": "train.py", "checkpointDir": "s3://bucket/ckpt/", "maxHungTimeBeforeGCInSeconds": "120"},
        gpus_available=False,
    )
    spec = specs.build_spec(values)
    assert (spec.checkpointDir, spec.maxHungTimeBeforeGCInSeconds) == ("s3://bucket/ckpt/", 120)
    with pytest.raises(BadInput, match="0 or more"):
        tf_command.job_values({"script": "train.py", "maxHungTimeBeforeGCInSeconds": "-1"}, gpus_available=False)
