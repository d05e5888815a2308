"""Whale-style data parallel training of a small classifier on generated MNIST-like digits.

    ws.jobs.submit(name="whale", workers=2, code_source="examples/training",
                   command="python /root/code/whale_mnist_like.py --steps=200 --global_batch=64")

Every rank generates the same 8x8 "digits" (ten noisy prototypes); ``wh.replica`` mirrors the model
on every replica and ``rep.distribute`` gives each replica its part of every global batch, so N ranks
train the weights one process would with the same global batch. ``--num_micro_batch=k`` accumulates
the gradients of k micro-batches a step (Whale's num_micro_batch); ``--optimizer=adagrad_decay`` trains
with PAI-TF's AdagradDecay, ``--keras=3`` with Keras 3 instead of tf_keras. The chief writes the final
weights (``weights.npz``) to the job's output folder and reports the loss and accuracy, reduced over the
replicas. Runs as a plain script too (one process, no TF_CONFIG: a cluster of one rank).
"""

import argparse
import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras as keras3
import numpy as np
import tensorflow as tf
import tf_keras

import pai_lab.training as pai
import pai_lab.whale as wh
from pai_lab.training.optimizers import AdagradDecay, LegacyAdagradDecay


def digits(count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``count`` 8x8 images, flattened, of ten classes: a random prototype per class plus noise."""
    rng = np.random.default_rng(seed)
    prototypes = rng.uniform(0, 1, size=(10, 64))
    labels = rng.integers(0, 10, size=count)
    images = np.clip(prototypes[labels] + rng.normal(0, 0.3, size=(count, 64)), 0, 1)
    return images.astype("float32"), labels.astype("int64")


def main() -> None:
    parser = argparse.ArgumentParser(allow_abbrev=False)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--global_batch", type=int, default=64)
    parser.add_argument("--num_micro_batch", type=int, default=1)
    parser.add_argument("--learning_rate", type=float, default=0.1)
    parser.add_argument("--optimizer", choices=["sgd", "adagrad_decay"], default="sgd")
    parser.add_argument("--keras", choices=["2", "3"], default="2", help="2: tf_keras (legacy Keras), 3: Keras 3")
    parser.add_argument("--accumulator_decay_step", type=int, default=100_000)
    parser.add_argument("--examples", type=int, default=1024)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--output", default=None, help="where weights.npz goes (default: the job's output folder)")
    args, _unknown = parser.parse_known_args()  # PAI-TF adds flags of its own

    # tf_keras (legacy Keras) by default; wh's train step runs Keras 3 across ranks too (its model.fit does not)
    keras, decay = (keras3, AdagradDecay) if args.keras == "3" else (tf_keras, LegacyAdagradDecay)
    wh.init()  # first: the ranks' collectives are set up once
    with wh.cluster() as cluster, wh.replica(num_micro_batch=args.num_micro_batch) as rep:
        keras.utils.set_random_seed(args.seed)
        model = keras.Sequential(
            [
                keras.layers.Input(shape=(64,)),
                keras.layers.Dense(32, activation="relu"),
                keras.layers.Dense(10),
            ]
        )
        if args.optimizer == "sgd":
            optimizer = keras.optimizers.SGD(args.learning_rate)
        else:  # PAI-TF's AdagradDecay
            optimizer = decay(args.learning_rate, accumulator_decay_step=args.accumulator_decay_step)
    per_replica = args.global_batch // rep.num_replicas
    print(
        f"rank {cluster.rank} of {cluster.worker_num}, {rep.num_replicas} replica(s), {per_replica} examples a replica "
        f"a step in {args.num_micro_batch} micro-batch(es)",
        flush=True,
    )

    images, labels = digits(args.examples, args.seed)
    data = rep.distribute(tf.data.Dataset.from_tensor_slices((images, labels)).repeat(), args.global_batch)
    entropy = keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction="none")
    step = rep.train_step(model, optimizer, lambda m, batch: entropy(batch[1], m(batch[0], training=True)))

    for number, batch in zip(range(1, args.steps + 1), data):
        loss = rep.reduce(step(batch), wh.GraphKeys.GLOBAL_MEAN_OBJECTS)
        if number % 50 == 0 or number == args.steps:
            accuracy = float(np.mean(np.argmax(model(images[:256]), axis=1) == labels[:256]))
            if rep.is_chief:
                pai.report(step=number, loss=float(loss), accuracy=accuracy)
            print(f"step {number}: loss={float(loss):.5f} accuracy={accuracy:.3f}", flush=True)

    if rep.is_chief:
        folder = args.output or os.environ.get("PAI_LAB_OUTPUT_DIR") or os.getcwd()
        os.makedirs(folder, exist_ok=True)
        np.savez(os.path.join(folder, "weights.npz"), *model.get_weights())
        print(f"saved the weights to {os.path.join(folder, 'weights.npz')}", flush=True)


if __name__ == "__main__":
    main()
