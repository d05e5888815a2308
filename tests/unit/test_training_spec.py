"""Job specs as `dlc submit tfjob` writes them: flags, job files, resources, placement."""

from __future__ import annotations

import pytest

from pai_lab.cli import parse
from pai_lab.cli.base import UsageError
from pai_lab.cli.dlc_jobs import _values
from pai_lab.errors import BadInput
from pai_lab.training import spec as specs
from pai_lab.training.placement import place
from pai_lab.training.runtime import (
    pai_flags,
    rank_environment,
    resolve_mounts,
    split_command,
)

MANUAL_2W1PS = [
    "dlc",
    "submit",
    "tf",
    "--name=test_2021",
    "--ps=1",
    "--ps_spec=ecs.g6.8xlarge",
    "--ps_image=registry-vpc.cn-beijing.aliyuncs.com/pai-dlc/tensorflow-training:1.12.2PAI-cpu-py27-ubuntu16.04",
    "--worker_spec=ecs.g6.4xlarge",
    "--worker_image=registry-vpc.cn-beijing.aliyuncs.com/pai-dlc/tensorflow-training:1.12.2PAI-cpu-py27-ubuntu16.04",
    "--command=python /root/data/dist_mnist/code/dist-main.py --max_steps=10000 --data_dir=/root/data/dist_mnist/data/",
    "--data_sources=data-2021xxxxxxxxxxxxxxxxxx",
    "--workers=2",  # the manual's example says 2 workers but forgets this flag
]


def _spec(argv):
    args = parse(argv)
    return specs.build_spec(_values(args), args._kind)


def test_the_manuals_two_worker_one_ps_example_parses_to_its_pods():
    spec = _spec(MANUAL_2W1PS)
    assert (spec.name, spec.workers, spec.ps, spec.chief) == ("test_2021", 2, 1, False)
    assert spec.data_sources == ["data-2021xxxxxxxxxxxxxxxxxx"]
    assert specs.parse_resources(spec.ps_spec, "ps_spec") == specs.Resources(32, 128, 0)
    pods = [plan.pod("dlc-20210411000000-abcdefgh") for plan in specs.plan_ranks(spec)]
    assert pods == [
        "dlc-20210411000000-abcdefgh-worker-0",
        "dlc-20210411000000-abcdefgh-worker-1",
        "dlc-20210411000000-abcdefgh-ps-0",
    ]
    # without --workers, as printed in the manual, there is nothing to run: said plainly
    with pytest.raises(BadInput, match="--workers") as err:
        _spec(MANUAL_2W1PS[:-1])
    assert err.value.field == "workers"


def test_a_job_file_parses_and_its_values_win_over_flags(tmp_path):
    job_file = tmp_path / "job_file.dist_mnist.1ps2w"
    job_file.write_text(
        "# 1 PS, 2 workers\n"
        "name=dist_mnist\n"
        "workers=2\n"
        "ps = 1\n"
        "\n"
        'command="python /root/code/main.py --max_steps=100"\n'
        "worker_spec=cpu=2,memory=4GiB,gpu=1\n"
        "maxHungTimeBeforeGCInSeconds=60\n"
    )
    spec = _spec(
        ["dlc", "submit", "tfjob", "--name=from_flag", "--workers=5", "--chief=true", f"--job_file={job_file}"]
    )
    assert (spec.name, spec.workers, spec.ps, spec.chief) == ("dist_mnist", 2, 1, True)
    assert spec.command == "python /root/code/main.py --max_steps=100"
    assert spec.maxHungTimeBeforeGCInSeconds == 60
    assert specs.parse_resources(spec.worker_spec, "worker_spec") == specs.Resources(2, 4, 1)
    assert [p.pod("j") for p in specs.plan_ranks(spec)] == ["j-chief-0", "j-worker-0", "j-worker-1", "j-ps-0"]


@pytest.mark.parametrize(
    "text, line, words",
    [
        ("name=a\ncommand=x\nworkers 2\n", 3, "expected key=value"),
        ("name=a\n\n# c\nwrokers=2\n", 4, "unknown key 'wrokers'"),
        ("job_file=other\n", 1, "only be given on the command line"),
        ("thirdparty_lib_dir=/tmp\n", 1, "only be given on the command line"),
    ],
)
def test_a_bad_job_file_line_is_named_by_its_number(text, line, words):
    with pytest.raises(BadInput) as err:
        specs.parse_job_file(text, "job file f")
    assert f"job file f line {line}:" in err.value.message and words in err.value.message
    assert err.value.field == "job_file"


@pytest.mark.parametrize(
    "argv, field, words",
    [
        (["--name=a", "--workers=2"], "command", "--command is required"),
        (["--command=python x.py", "--workers=2"], "name", "--name is required"),
        (["--name=a", "--command=x", "--workers=-1"], "workers", "0 or more"),
        (["--name=a", "--command=x", "--workers=2", "--ps=-3"], "ps", "0 or more"),
        (["--name=a", "--command=x", "--workers=two"], "workers", "whole number"),
        (["--name=a", "--command=x", "--workers=1", "--chief=maybe"], "chief", "true or false"),
        (["--name=a", "--command=x", "--workers=1", "--worker_spec=huge"], "worker_spec", "ECS instance type"),
        (["--name=a", "--command=x", "--workers=1", "--code_source=a,b"], "code_source", "one code source"),
    ],
)
def test_bad_flags_are_refused_with_the_flag_named(argv, field, words):
    with pytest.raises(BadInput) as err:
        _spec(["dlc", "submit", "tfjob", *argv])
    assert err.value.field == field and words in err.value.message


def test_unknown_flags_do_not_parse():
    with pytest.raises(UsageError, match="unrecognized arguments: --wrkers=2"):
        parse(["dlc", "submit", "tfjob", "--name=a", "--command=x", "--wrkers=2"])


def test_hyperparameter_files_become_script_flags():
    assert specs.parse_hyperparameters("batch_size=10\nlearning_rate=0.01\n\nuse_fp16=True dataset=flowers\n") == [
        "--batch_size=10",
        "--learning_rate=0.01",
        "--use_fp16=True",
        "--dataset=flowers",
    ]
    with pytest.raises(BadInput, match="line 2: expected key=value"):
        specs.parse_hyperparameters("a=1\noops\n")


def test_the_progress_line_counts_running_finished_total_per_role():
    pods = [
        {"role": "ps", "state": "Running"},
        {"role": "worker", "state": "Running"},
        {"role": "worker", "state": "Succeeded"},
    ]
    assert specs.progress_line(pods) == "ps_job:1/0/1[0%] worker_job:1/1/2[50%]"


def test_ranks_and_their_gpus_are_placed_all_or_nothing():
    ranks = specs.plan_ranks(
        specs.build_spec({"name": "g", "command": "x", "workers": 2, "ps": 1, "worker_spec": "cpu=1,gpu=1"})
    )
    workers = {"tcp://a:1": {"nthreads": 2, "gpus": 2}, "tcp://b:1": {"nthreads": 2, "gpus": 0}}
    slots, why = place(ranks, workers, {}, {})
    assert why == ""
    by_role = {f"{r.role}-{r.index}": s for r, s in zip(ranks, slots)}
    assert by_role["worker-0"].address == by_role["worker-1"].address == "tcp://a:1"
    assert sorted(by_role["worker-0"].gpus + by_role["worker-1"].gpus) == [0, 1]
    assert by_role["ps-0"].address == "tcp://b:1" and by_role["ps-0"].gpus == []
    # a GPU in use elsewhere leaves only one: the job waits, and says what for
    slots, why = place(ranks, workers, {}, {"tcp://a:1": {0}})
    assert slots is None and "free GPU" in why
    slots, why = place(ranks, {"tcp://a:1": {"nthreads": 2, "gpus": 0}}, {}, {})
    assert slots is None and "GPU resources" in why
    cpu_ranks = specs.plan_ranks(specs.build_spec({"name": "c", "command": "x", "workers": 3}))
    slots, why = place(cpu_ranks, {"tcp://a:1": {"nthreads": 2, "gpus": 0}}, {}, {})
    assert slots is None and "waiting for 3 rank slots" in why and "2 worker thread(s), 2 free" in why


def test_each_rank_gets_tf_config_the_pai_tf_flags_and_its_gpus():
    launch = {
        "job_id": "dlc-1-x",
        "kind": "tfjob",
        "output_dir": "/o",
        "model_dir": "/o/model",
        "checkpoint_dir": "/ckpt",
        "buckets": ["file:///d/"],
        "hyperparameters": ["--lr=0.1"],
    }
    cluster = {"worker": ["h:1", "h:2"], "ps": ["h:3"]}
    env = rank_environment(launch, "worker", 1, cluster, [1])
    assert env["TF_CONFIG"] == (
        '{"cluster": {"worker": ["h:1", "h:2"], "ps": ["h:3"]}, "task": {"type": "worker", "index": 1}}'
    )
    assert env["CUDA_VISIBLE_DEVICES"] == "1" and env["PAI_LAB_IS_CHIEF"] == "0"
    assert rank_environment(launch, "worker", 0, cluster, None)["PAI_LAB_IS_CHIEF"] == "1"
    assert "CUDA_VISIBLE_DEVICES" not in rank_environment(launch, "worker", 0, cluster, None)
    assert pai_flags(launch, "ps", 0, cluster) == [
        "--job_name=ps",
        "--task_index=0",
        "--ps_hosts=h:3",
        "--worker_hosts=h:1,h:2",
        "--checkpointDir=/ckpt",
        "--buckets=file:///d/",
        "--lr=0.1",
    ]


def test_mount_paths_in_the_command_resolve_and_simple_commands_need_no_shell():
    mounts = {"/root/data": "/srv/digits", "/root/code": "/jobs/j/code"}
    assert (
        resolve_mounts("python /root/code/train.py --data_dir=/root/data/ --x=/root/database", mounts)
        == "python /jobs/j/code/train.py --data_dir=/srv/digits/ --x=/root/database"
    )
    assert split_command("TF_USE_LEGACY_KERAS=1 python t.py --a='b c'") == (
        {"TF_USE_LEGACY_KERAS": "1"},
        ["python", "t.py", "--a=b c"],
    )
    assert split_command("cd /x; python t.py")[1] is None
