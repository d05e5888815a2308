"""Train a small classifier on scikit-learn's digits with MultiWorkerMirroredStrategy (tf_keras).

Runs as one process, or as every rank of a job:

    pai dlc submit tfjob --name=digits --workers=2 \
        --command="python /root/code/digits_mwms.py --epochs=3" --code_source=examples/training

Legacy Keras (tf_keras) is used on purpose: Keras 3's model.fit does not run under
MultiWorkerMirroredStrategy in TensorFlow 2.16+. Each rank reads its own slice of every global
batch, so the weights match a one-process run with the same global batch. Unknown flags (the PAI-TF ones, such as
--ps_hosts) are ignored.
"""

import argparse
import json
import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import tensorflow as tf
import tf_keras as keras

import pai_lab.training as pai


def load_digits(samples: int):
    try:
        from sklearn.datasets import load_digits as sk_digits

        data = sk_digits()
        x, y = data.data.astype("float32") / 16.0, data.target.astype("int64")
    except ImportError:  # synthetic stand-in with the same shape
        rng = np.random.default_rng(0)
        x = rng.random((1797, 64), dtype=np.float32)
        y = (x[:, :10].argmax(axis=1)).astype("int64")
    return x[:samples], y[:samples]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--global_batch", type=int, default=64)
    parser.add_argument("--samples", type=int, default=1024)
    parser.add_argument("--learning_rate", type=float, default=0.05)
    parser.add_argument("--checkpointDir", default="")
    args, _unknown = parser.parse_known_args()

    tf.keras.utils.set_random_seed(7)
    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    x, y = load_digits(args.samples)

    def dataset_fn(context: tf.distribute.InputContext) -> tf.data.Dataset:
        # Rank i of N takes rows [i*b, (i+1)*b) of every global batch (b = global batch / N), so the
        # ranks together see exactly the batches of a one-process run.
        b = context.get_per_replica_batch_size(args.global_batch)
        i = context.input_pipeline_id
        rows = np.arange(len(x)).reshape(-1, args.global_batch)[:, i * b:(i + 1) * b].ravel()
        return tf.data.Dataset.from_tensor_slices((x[rows], y[rows])).batch(b)

    dataset = strategy.distribute_datasets_from_function(dataset_fn)

    with strategy.scope():
        model = keras.Sequential([
            keras.layers.Input(shape=(64,)),
            keras.layers.Dense(32, activation="relu", kernel_initializer=keras.initializers.GlorotUniform(seed=1)),
            keras.layers.Dense(10, kernel_initializer=keras.initializers.GlorotUniform(seed=2)),
        ])
        # The mean loss per replica is scaled by 1/replicas and the gradients summed over the ranks:
        # the same step as one process taking the mean over the global batch.
        model.compile(optimizer=keras.optimizers.SGD(args.learning_rate),
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    model.fit(dataset, epochs=args.epochs, steps_per_epoch=len(x) // args.global_batch, verbose=2, callbacks=[pai.keras_callback(every_n_batches=4, keras=keras)])

    target = pai.model_dir()
    model.save(target)
    if pai.is_chief():
        weights = [w.tolist() for w in model.get_weights()]
        with open(os.path.join(target, "weights.json"), "w") as f:
            json.dump(weights, f)
        print(f"saved the model to {target}")


if __name__ == "__main__":
    main()
