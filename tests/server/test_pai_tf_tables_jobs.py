"""PAI-TF tables in real jobs on a `pai server` and its Dask cluster: --tables/--outputs reach the ranks as
flags, the manual's logistic regression over TableRecordDataset starts at ln 2, and a predictjob on two
ranks shares its input table through a WorkQueue and writes one prediction per input row."""

from __future__ import annotations

import numpy as np
import pytest

LR_SCRIPT = r"""
import argparse
import tensorflow as tf
from pai_lab.pai_tf import TableRecordDataset, tables
parser = argparse.ArgumentParser()
parser.add_argument("--tables")
parser.add_argument("--task_index", type=int, default=0)
parser.add_argument("--worker_hosts", default="")
args, _ = parser.parse_known_args()
assert args.tables == tables()[0], (args.tables, tables())
slices = len(args.worker_hosts.split(","))
dataset = TableRecordDataset([args.tables], record_defaults=[1.0] * 4, slice_id=args.task_index,
                             slice_count=slices).repeat().batch(128)
W = tf.Variable(tf.zeros([3, 2]))
b = tf.Variable(tf.zeros([2]))
for step, (v1, v2, v3, v4) in enumerate(dataset.take(601)):
    labels = tf.reshape(tf.cast(v4, tf.int32), [128])
    features = tf.stack([v1, v2, v3], axis=1)
    with tf.GradientTape() as tape:
        logits = tf.matmul(features, W) + b
        loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits))
    gW, gb = tape.gradient(loss, [W, b])
    W.assign_sub(0.05 * gW)
    b.assign_sub(0.05 * gb)
    if step % 200 == 0:
        print("loss", loss.numpy(), flush=True)
"""


def _sample_csv(path, rows: int = 2000) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(rows, 3))
    label = (x[:, 0] + x[:, 1] > 0).astype(int)  # separable, as the manual's sample is
    path.write_text("".join(f"{a!r},{b!r},{c!r},{y}\n" for (a, b, c), y in zip(x.tolist(), label, strict=True)))


def test_the_manuals_logistic_regression_starts_at_ln_2(live_server, tmp_path, unique_name, monkeypatch):
    pytest.importorskip("tensorflow")
    sample = tmp_path / "sample.csv"
    _sample_csv(sample)
    script = tmp_path / "lr_dataset.py"
    script.write_text(LR_SCRIPT)
    ws = live_server.client().workspace("default")
    monkeypatch.chdir(tmp_path)
    job = ws.jobs.submit(unique_name("lr"), f"python {script}", workers=2, tables=["./sample.csv"])
    assert job.spec.tables == [str(sample)]  # the caller's relative path, made absolute
    job.wait(timeout=300, poll=0.5)
    assert job.state == "Succeeded", (job.reason, job.logs(0)[-2000:])
    for rank in (0, 1):
        losses = [float(line.split()[1]) for line in job.logs(rank).splitlines() if line.startswith("loss ")]
        assert job.logs(rank).splitlines()[0].startswith("loss 0.6931472")  # zero weights: exactly ln 2
        assert len(losses) == 4 and losses[-1] < 0.2  # and it learns, each rank on its own slice


def test_bad_tables_and_predictjobs_are_refused_naming_the_field(live_server, tmp_path):
    from pai_lab.errors import BadInput

    ws = live_server.client().workspace("default")
    cases = [
        ({"command": "true", "tables": ["no-such-dataset"]}, "tables", "no registered dataset"),
        ({"command": "true", "tables": ["odps://p/views/t"]}, "tables", "odps://PROJECT/tables/DATASET"),
        ({"command": "true", "outputs": ["/etc/out"]}, "outputs", ""),
        ({"kind": "predictjob", "tables": ["a"], "outputs": ["b"]}, "model", "needs --model"),
        ({"kind": "predictjob", "model": "m", "outputs": ["b"]}, "tables", "needs --tables"),
        (
            {"kind": "predictjob", "model": "nope", "tables": [str(tmp_path)], "outputs": [str(tmp_path / "o")]},
            "model",
            "no registered model",
        ),
        ({"command": "true", "model": "m"}, "model", "for a predictjob"),
    ]
    for params, field, words in cases:
        kind = params.pop("kind", "tfjob")
        command = params.pop("command", "")
        with pytest.raises(BadInput) as refused:
            ws.jobs.submit("bad", command, workers=1, kind=kind, **params)
        assert refused.value.field == field and words in refused.value.message, refused.value


def test_a_predictjob_on_two_ranks_predicts_every_row_once(live_server, cli, tmp_path, unique_name):
    pytest.importorskip("tensorflow")
    import keras
    import pandas as pd

    from pai_lab.pai_tf import TableWriter, read_table

    rng = np.random.default_rng(1)
    features = rng.normal(size=(1000, 3)).astype("float32")
    folder = tmp_path / "scores_in"
    folder.mkdir()
    for part in range(2):  # a table of two Parquet files
        rows = features[part * 500 : (part + 1) * 500]
        pd.DataFrame(rows, columns=["f1", "f2", "f3"]).to_parquet(folder / f"part-{part:05d}.parquet")
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, activation="softmax")])
    export = tmp_path / "tiny_model"
    model.export(str(export), verbose=False)
    ws = live_server.client().workspace("default")
    table_name, model_name = unique_name("scores-in"), unique_name("tiny")
    ws.datasets.register(table_name, str(folder), progress=False)
    ws.models.register(model_name, str(export))
    out = tmp_path / "scores_out"
    with TableWriter(str(out), 99999, ["row", "prediction", "probabilities"]) as stale:
        stale.write([(5000, 0, "1,0")], indices=[0, 1, 2])  # an earlier run's slice: the job starts afresh

    rc, stdout, err = cli(
        "dlc", "submit", "predictjob", f"--name={unique_name('predict')}", "--workers=2",
        f"--model={model_name}", f"--tables=odps://lab/tables/{table_name}", f"--outputs={out}",
        '--userDefinedParameters=--num_slices=16 --batch_size=64', "--timeout=300",
    )  # fmt: skip
    assert rc == 0, (stdout, err)
    assert "Succeeded" in stdout, stdout
    written = read_table(str(out)).to_pandas().sort_values("row")
    assert written["row"].tolist() == list(range(1000))  # every input row, exactly once
    expected = np.argmax(model.predict(features, verbose=0), axis=1)
    assert written["prediction"].tolist() == expected.tolist()
    probabilities = np.array([[float(p) for p in s.split(",")] for s in written["probabilities"]])
    assert np.allclose(probabilities.sum(axis=1), 1.0, atol=1e-4)


def test_a_predictjob_reads_and_writes_tables_of_registered_s3_datasets(live_server, s3_bucket, tmp_path, unique_name):
    pytest.importorskip("tensorflow")
    import keras

    from pai_lab.pai_tf import TableWriter, read_table

    bucket, options = s3_bucket
    rng = np.random.default_rng(2)
    rows = rng.normal(size=(300, 2)).astype("float32")
    with TableWriter(f"s3://{bucket}/in", 0, ["a", "b"], storage_options=options) as writer:
        writer.write(rows.tolist(), indices=[0, 1])
    with TableWriter(f"s3://{bucket}/out", 99999, ["row", "prediction"], storage_options=options) as writer:
        writer.write([(5000, 1.0)], indices=[0, 1])  # a slice of an earlier run: a predictjob starts afresh
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    export = tmp_path / "regression"
    model.export(str(export), verbose=False)
    ws = live_server.client().workspace("default")
    source, target = unique_name("s3-in"), unique_name("s3-out")
    ws.datasets.register(source, f"s3://{bucket}/in/", storage_options=options, progress=False)
    ws.datasets.register(target, f"s3://{bucket}/out/", storage_options=options, progress=False)

    job = ws.jobs.submit(  # through the Python client and REST
        unique_name("predict-s3"),
        "",
        kind="predictjob",
        workers=2,
        model=str(export),
        tables=[source],
        outputs=[target],
    )
    job.wait(timeout=300, poll=0.5)
    assert job.state == "Succeeded", (job.reason, job.logs(0)[-2000:])
    written = read_table(f"s3://{bucket}/out", options).to_pandas().sort_values("row")
    assert written["row"].tolist() == list(range(300))
    assert np.allclose(written["prediction"].to_numpy(), model.predict(rows, verbose=0)[:, 0], atol=1e-5)


def test_a_sandboxed_predictjob_reaches_its_queue_and_writes_its_output_table(tmp_path_factory):
    pytest.importorskip("tensorflow")
    import shutil

    import keras
    import pandas as pd

    from pai_lab.pai_tf import read_table
    from tests.conftest import start_pai_server

    if not shutil.which("bwrap"):
        pytest.skip("bubblewrap is not installed")
    root = tmp_path_factory.mktemp("sandboxed") / "root"
    server = start_pai_server(root, "--job-sandbox", "bubblewrap")
    try:
        data = root.parent / "in"
        data.mkdir()
        pd.DataFrame({"x": np.arange(50, dtype="float32")}).to_parquet(data / "part-00000.parquet")
        model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1, kernel_initializer="ones")])
        model.export(str(root.parent / "model"), verbose=False)
        ws = server.client().workspace("default")
        out = root.parent / "out"
        job = ws.jobs.submit(
            "sandboxed", "", kind="predictjob", workers=2, model=str(root.parent / "model"),
            tables=[str(data)], outputs=[str(out)], userDefinedParameters="--num_slices=5",
        )  # fmt: skip
        job.wait(timeout=300, poll=0.5)
        assert job.state == "Succeeded", (job.reason, job.logs(0)[-2000:])
        written = read_table(str(out)).to_pandas().sort_values("row")
        assert written["row"].tolist() == list(range(50)) and written["prediction"].tolist() == list(range(50))
    finally:
        server.stop()
