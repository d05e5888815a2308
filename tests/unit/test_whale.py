"""pai_lab.whale without TensorFlow: Whale's file-sharding policies, its layouts (the manual's own
examples), its communication variables, and the clear refusals of what pai_lab does not do."""

from __future__ import annotations

import json
import warnings

import pytest

import pai_lab.whale as wh

FILES = [f"part-{i:02d}" for i in range(10)]


def test_an_even_list_is_split_evenly_under_every_policy():
    for policy in wh.POLICIES:
        shares = [wh.shard_files(FILES, 5, r, policy) for r in range(5)]
        assert shares == [FILES[r::5] for r in range(5)]
        assert sorted(f for s in shares for f in s) == FILES


def test_uneven_lists_follow_the_policy_named():
    # shuffle (the default): every rank reads everything, in an order of its own that a seed repeats
    shuffled = [wh.shard_files(FILES, 3, r, "shuffle", seed=4) for r in range(3)]
    assert all(sorted(s) == FILES for s in shuffled)
    assert len({tuple(s) for s in shuffled}) == 3
    assert shuffled[1] == wh.shard_files(FILES, 3, 1, "shuffle", seed=4)
    assert shuffled[1] != wh.shard_files(FILES, 3, 1, "shuffle", seed=5)
    # unbalanced: all files once, the first rank one more
    unbalanced = [wh.shard_files(FILES, 3, r, "unbalanced") for r in range(3)]
    assert [len(s) for s in unbalanced] == [4, 3, 3]
    assert sorted(f for s in unbalanced for f in s) == FILES
    # drop_last: an even split of the first 9, the 10th never read
    dropped = [wh.shard_files(FILES, 3, r, "drop_last") for r in range(3)]
    assert [len(s) for s in dropped] == [3, 3, 3]
    assert sorted(f for s in dropped for f in s) == FILES[:9]


def test_fewer_files_than_ranks_leaves_only_the_shuffle_policy():
    with pytest.warns(UserWarning, match="fewer files than ranks"):
        share = wh.shard_files(FILES[:2], 3, 2, "drop_last")
    assert sorted(share) == FILES[:2]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert sorted(wh.shard_files(FILES[:2], 3, 0)) == FILES[:2]


def test_a_cluster_gives_each_rank_its_share():
    shares = [
        wh.Cluster(worker_hosts="a:1,b:1,c:1", rank=r, gpus_per_worker=0).shard_files(FILES, "unbalanced")
        for r in range(3)
    ]
    assert shares == [FILES[0::3], FILES[1::3], FILES[2::3]]


def test_whales_variables_pick_the_policy_and_unbalanced_wins(monkeypatch):
    assert wh.policy_from_env({}) == "shuffle"
    assert wh.policy_from_env({"WHALE_DROP_LAST_FILES": "True"}) == "drop_last"
    both = {"WHALE_DROP_LAST_FILES": "True", "WHALE_UNBALANCED_IO_SLICING": "true"}
    assert wh.policy_from_env(both) == "unbalanced"
    monkeypatch.setenv("WHALE_DROP_LAST_FILES", "1")
    assert len(wh.shard_files(FILES, 4, 3)) == 2


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("part-0", 2, 0), "not one string"),
        ((FILES, 0, 0), "num_shards"),
        ((FILES, 2, 2), "index: this rank's number, 0 to 1"),
        ((FILES, 3, 0, "round_robin"), "policy: one of shuffle, unbalanced, drop_last"),
    ],
)
def test_bad_sharding_arguments_name_the_field(args, message):
    with pytest.raises((ValueError, TypeError), match=message):
        wh.shard_files(*args)


def _short(slices):
    """/job:worker/replica:0/task:1/device:GPU:2 -> W1:G2"""

    def name(device: str) -> str:
        task, _, gpu = device.partition("/device:GPU:")
        return f"W{task.rsplit(':', 1)[1]}:G{gpu}"

    return [[[name(d) for d in group] for group in slice_] for slice_ in slices]


def test_layouts_give_the_manuals_slices():
    assert _short(wh.compute_slices(2, 4, {"average": 4})) == [
        [["W0:G0"], ["W0:G1"], ["W0:G2"], ["W0:G3"]],
        [["W1:G0"], ["W1:G1"], ["W1:G2"], ["W1:G3"]],
    ]
    assert wh.compute_slices(2, 4, {"row": 4}) == wh.compute_slices(2, 4, {"average": 4})
    assert _short(wh.compute_slices(2, 4, {"block": "3,1"})) == [
        [["W0:G0", "W0:G1", "W0:G2"], ["W1:G0", "W1:G1", "W1:G2"]],
        [["W0:G3"], ["W1:G3"]],
    ]
    assert _short(wh.compute_slices(2, 4, {"column": 2})) == [
        [["W0:G0"], ["W1:G0"]],
        [["W0:G1"], ["W1:G1"]],
        [["W0:G2"], ["W1:G2"]],
        [["W0:G3"], ["W1:G3"]],
    ]
    four = _short(wh.compute_slices(4, 4, {"column": 2}))
    assert [[g[0] for g in s] for s in four[:3]] == [["W0:G0", "W1:G0"], ["W2:G0", "W3:G0"], ["W0:G1", "W1:G1"]]
    assert [[g[0] for g in s] for s in four[-1:]] == [["W2:G3", "W3:G3"]]
    specific = {"specific": [[["worker:0/gpu:0"], ["worker:0/gpu:1"]], [["worker:1/gpu:0"], ["worker:1/gpu:1"]]]}
    assert _short(wh.compute_slices(2, 2, specific)) == [[["W0:G0"], ["W0:G1"]], [["W1:G0"], ["W1:G1"]]]
    assert len(wh.compute_slices(2, 4, "all")) == 1 and len(wh.compute_slices(2, 4, "all")[0]) == 8


def test_the_roles_example_makes_two_masters_of_three_workers():
    # 3 servers x 2 GPUs, block "3,3": slices[0] = W0:G0, W0:G1, W1:G0, so workers 0 and 1 are masters
    cluster = wh.Cluster(worker_hosts="a:1,b:1,c:1", rank=2, layout={"block": "3,3"}, gpus_per_worker=2)
    assert _short(cluster.slices) == [[["W0:G0"], ["W0:G1"], ["W1:G0"]], [["W1:G1"], ["W2:G0"], ["W2:G1"]]]
    assert cluster.master_ranks == [0, 1]
    assert (cluster.worker_num, cluster.total_gpu_num, cluster.rank) == (3, 6, 2)


@pytest.mark.parametrize(
    ("layout", "message"),
    [
        ({"row": 3}, "divides the 8 devices"),
        ({"block": "2,1"}, "add up to the 4 devices of a worker or the 8 of the cluster"),
        ({"specific": [[["worker:2/gpu:0"]]]}, "not one of worker:0/gpu:0 to worker:1/gpu:3"),
        ({"diagonal": 2}, "unknown policy 'diagonal'"),
        ("row", '"all" or a dict'),
    ],
)
def test_bad_layouts_say_what_fits(layout, message):
    with pytest.raises(ValueError, match=message):
        wh.compute_slices(2, 4, layout)


def test_the_cluster_comes_from_tf_config_and_shows_its_slices(monkeypatch):
    config = {"cluster": {"chief": ["h0:1"], "worker": ["h1:1", "h2:1"]}, "task": {"type": "worker", "index": 1}}
    monkeypatch.setenv("TF_CONFIG", json.dumps(config))
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    cluster = wh.Cluster(gpus_per_worker=0)
    assert cluster.worker_hosts == ["h0:1", "h1:1", "h2:1"] and cluster.rank == 2 and cluster.worker_num == 3
    assert cluster.slices == [[[f"/job:worker/replica:0/task:{w}/device:CPU:0"] for w in range(3)]]
    page = cluster._repr_html_()
    assert "worker 2 (this rank)" in page and page.count("slice 0") == 3
    monkeypatch.delenv("TF_CONFIG")
    alone = wh.Cluster(gpus_per_worker=1)
    assert (alone.worker_num, alone.rank, alone.total_gpu_num) == (1, 0, 1)
    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": {"ps": ["p:1"]}, "task": {"type": "ps", "index": 0}}))
    with pytest.raises(ValueError, match="not a training rank"):
        wh.Cluster(gpus_per_worker=0)
    with pytest.raises(ValueError, match="ps_hosts: pai_lab trains data parallel"):
        wh.cluster(worker_hosts="a:1", ps_hosts="p:1")


def test_whale_scopes_beyond_data_parallel_are_refused_clearly():
    with pytest.raises(wh.WhaleUnsupported, match=r"wh.stage: .*inter-layer model parallelism.*data parallel only"):
        wh.stage()
    with pytest.raises(wh.WhaleUnsupported, match=r"wh.pipeline: .*wh.replica\(num_micro_batch=k\)"):
        wh.pipeline(num_micro_batch=5)
    with pytest.raises(wh.WhaleUnsupported, match=r"wh.split: .*shards an operator.*data parallel only"):
        wh.split()
    with pytest.raises(wh.WhaleUnsupported, match=r"only 'replica' \(automatic data parallel\)"):
        wh.auto_parallel([wh.pipeline, wh.replica])
    with pytest.raises(wh.WhaleUnsupported, match="only 'replica'"):
        wh.auto_parallel(wh.split)


@pytest.mark.parametrize("value", [0, 1025, True, 1.5])
def test_a_bad_micro_batch_count_is_refused_before_tensorflow_starts(value):
    with pytest.raises(ValueError, match="num_micro_batch: "):
        wh.replica(num_micro_batch=value)
    with pytest.raises(ValueError, match="devices: a list of this process's device names"):
        wh.replica(devices="/cpu:0")


def test_communication_variables_map_or_warn_once(monkeypatch):
    monkeypatch.setattr("pai_lab.whale._state._warned", set())  # a fresh process's
    env = {
        "WHALE_COMMUNICATION_NUM_SPLITS": "4",
        "WHALE_COMMUNICATION_DENSE_FP16": "True",
        "WHALE_COMMUNICATION_FP16_SCALE": "128",
        "WHALE_COMMUNICATION_SPARSE_AS_DENSE": "false",
    }
    options = wh.CommOptions.from_env(env)
    assert (options.num_splits, options.dense_fp16, options.fp16_scale, options.sparse_as_dense) == (
        4,
        True,
        128.0,
        False,
    )
    assert options.bytes_per_pack(1001) == 251 and options.bytes_per_pack() == 0
    assert wh.CommOptions(pack_size=4096, num_splits=4).bytes_per_pack(1001) == 4096
    with pytest.warns(UserWarning, match="HIERARCHICAL_ALL_REDUCE is accepted and ignored"):
        wh.CommOptions.from_env({"WHALE_COMMUNICATION_HIERARCHICAL_ALL_REDUCE": "True"})
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # once a process
        wh.CommOptions(hierarchical_all_reduce=True)
    with pytest.raises(ValueError, match="WHALE_COMMUNICATION_NUM_SPLITS: cannot read 'many'"):
        wh.CommOptions.from_env({"WHALE_COMMUNICATION_NUM_SPLITS": "many"})
    with pytest.raises(ValueError, match="implementation: one of auto, ring, nccl"):
        wh.CommOptions(implementation="mpi")
    with pytest.raises(ValueError, match="fp16_scale: a positive gradient scale"):
        wh.CommOptions(fp16_scale=0)
