"""DeepFM (or Wide&Deep) click-through-rate model on Avazu-schema tables, as the manual's PAI-TF case.

    pai -name tensorflow1120_ext -Dscript=examples/training/deepfm_ctr.py
        -Dtables=odps://lab/tables/avazu-ctr-train,odps://lab/tables/avazu-ctr-test
        -DuserDefinedParameters="--model=deepfm --epochs=3"
        -Dcluster='{"worker":{"count":2}}'

The first table trains, the second validates. Every column but ``click`` is a categorical string; each
field is hashed into its own buckets and embedded with the same ``embedding_dim`` (DeepFM needs one size
for all fields). The model adds a linear part, the factorization machine's pairwise part (``deepfm``
only) and a DNN, as the manual's script does. Each worker reads its slice of each table
(``slice_id=task_index``, ``slice_count=workers``) and the workers train together under
MultiWorkerMirroredStrategy. Log-loss and AUC are reported per epoch for both tables; the chief then
scores the whole validation table and reports ``test_logloss`` and ``test_auc``.
"""

import argparse
import json
import math
import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")  # Keras 3's fit does not run under MultiWorkerMirroredStrategy
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import tensorflow as tf
import tf_keras as keras

import pai_lab.training as pai
from pai_lab.pai_tf import TableRecordDataset, count_rows, read_table

# hash buckets per field: the manual's, scaled to a table of thousands of rows
BUCKETS = {
    "hour": 50, "C1": 10, "banner_pos": 10, "site_id": 1000, "site_domain": 1000, "site_category": 100,
    "app_id": 1000, "app_domain": 500, "app_category": 100, "device_id": 2000, "device_ip": 2000,
    "device_model": 1000, "device_type": 10, "device_conn_type": 10,
    **{f"C{i}": 500 for i in range(14, 22)},
}  # fmt: skip
FIELDS = list(BUCKETS)


def build(model_type: str, embedding_dim: int, learning_rate: float, l2: float):
    inputs = {f: keras.Input(shape=(), dtype=tf.string, name=f) for f in FIELDS}
    linear, embedded = [], []
    for field in FIELDS:
        ids = keras.layers.Hashing(BUCKETS[field], name=f"hash_{field}")(inputs[field])
        penalty = keras.regularizers.l2(l2)
        linear.append(keras.layers.Embedding(BUCKETS[field], 1, embeddings_regularizer=penalty, name=f"w_{field}")(ids))
        embedded.append(
            keras.layers.Embedding(
                BUCKETS[field],
                embedding_dim,
                embeddings_regularizer=penalty,
                name=f"v_{field}",
            )(ids)
        )
    logit = keras.layers.Add(name="linear")(linear)  # (batch, 1)
    stack = tf.stack(embedded, axis=1)  # (batch, fields, k)
    if model_type == "deepfm":  # 0.5 * sum((sum e)^2 - sum e^2): every pair of fields, in O(fields * k)
        square_of_sum = tf.square(tf.reduce_sum(stack, axis=1))
        sum_of_square = tf.reduce_sum(tf.square(stack), axis=1)
        logit = logit + 0.5 * tf.reduce_sum(square_of_sum - sum_of_square, axis=1, keepdims=True)
    deep = keras.layers.Flatten()(stack)
    for units in (64, 32):
        deep = keras.layers.Dense(units, activation="relu")(deep)
    logit = logit + keras.layers.Dense(1)(deep)
    model = keras.Model(inputs, keras.layers.Activation("sigmoid", name="probability")(logit))
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss=keras.losses.BinaryCrossentropy(),
        metrics=[keras.metrics.AUC(name="auc")],
    )
    return model


def table_input(strategy, uri: str, slice_id: int, slice_count: int, global_batch: int):
    defaults = [0] + [""] * len(FIELDS)  # click, then the fields, in the table's column order
    columns = ",".join(["click", *FIELDS])

    def make(context):
        rows = TableRecordDataset(
            [uri],
            defaults,
            selected_cols=columns,
            slice_id=slice_id,
            slice_count=slice_count,
        )
        pairs = rows.map(
            lambda click, *fields: (
                dict(zip(FIELDS, fields)),
                tf.cast(click, tf.float32),
            )
        )
        return pairs.shuffle(4096, seed=slice_id).repeat().batch(context.get_per_replica_batch_size(global_batch))

    return strategy.distribute_datasets_from_function(make), max(1, math.ceil(count_rows(uri) / global_batch))


def main() -> None:
    parser = argparse.ArgumentParser(allow_abbrev=False)
    parser.add_argument("--tables", default="")
    parser.add_argument("--task_index", type=int, default=0)
    parser.add_argument("--worker_hosts", default="")
    parser.add_argument("--model", default="deepfm", choices=["deepfm", "wdl"])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--embedding_dim", type=int, default=8)
    parser.add_argument("--global_batch", type=int, default=512)
    parser.add_argument("--learning_rate", type=float, default=0.01)
    parser.add_argument(
        "--l2",
        type=float,
        default=1e-3,
        help="L2 penalty on the embeddings (rare ids overfit)",
    )
    args, _ = parser.parse_known_args()
    train_table, test_table = args.tables.split(",")[:2]
    workers = len([h for h in args.worker_hosts.split(",") if h]) or 1

    keras.utils.set_random_seed(2020)
    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    train, steps = table_input(strategy, train_table, args.task_index, workers, args.global_batch)
    val, val_steps = table_input(strategy, test_table, args.task_index, workers, args.global_batch)
    with strategy.scope():
        model = build(args.model, args.embedding_dim, args.learning_rate, args.l2)
    model.fit(
        train,
        steps_per_epoch=steps,
        validation_data=val,
        validation_steps=val_steps,
        epochs=args.epochs,
        verbose=2,
        callbacks=[pai.keras_callback(every_n_batches=5, keras=keras)],
    )

    if pai.is_chief():  # the whole validation table, once, as the manual's evaluation does
        frame = read_table(test_table).to_pandas()
        scores = []
        for start in range(0, len(frame), 2048):  # direct calls: this rank alone, no collective
            part = frame.iloc[start : start + 2048]
            scores.append(
                model(
                    {f: tf.constant(part[f].astype(str).to_numpy()) for f in FIELDS},
                    training=False,
                )
            )
        p = np.clip(np.concatenate([s.numpy().reshape(-1) for s in scores]), 1e-7, 1 - 1e-7)
        y = frame["click"].to_numpy().astype(float)
        logloss = float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))
        order = np.argsort(p)  # AUC: the chance a random click scores above a random non-click
        ranks = np.empty(len(p))
        ranks[order] = np.arange(1, len(p) + 1)
        positives = y.sum()
        auc = float((ranks[y == 1].sum() - positives * (positives + 1) / 2) / (positives * (len(y) - positives)))
        pai.report(step=steps * args.epochs, test_logloss=logloss, test_auc=auc)
        print(
            "test "
            + json.dumps(
                {
                    "model": args.model,
                    "logloss": round(logloss, 4),
                    "auc": round(auc, 4),
                }
            )
        )
    pai.save_model(model)


if __name__ == "__main__":
    main()
