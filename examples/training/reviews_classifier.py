"""Train a small text classifier on a job's data source (a dataset or a labeling task's answers).

    ws.jobs.submit(name="reviews", workers=2, code_source="examples/training",
                   data_sources=["task:reviews-labels"],     # or a dataset: ["reviews"]
                   command="python /root/code/reviews_classifier.py --epochs=20")

Words are hashed into a fixed number of buckets inside the model (no vocabulary to adapt, so every rank
builds the same model), then a bag of words feeds a softmax. Every 10th item is held out for validation.
The chief saves a SavedModel whose ``serving_default`` takes ``text`` (tf.string [N]) and returns
``probabilities``, with ``class_names.json`` beside it. Legacy Keras (tf_keras) under
MultiWorkerMirroredStrategy; unknown flags (the PAI-TF ones) are ignored.
"""

import argparse
import os
import sys

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf
import tf_keras as keras

import pai_lab.training as pai


class HashedWords(keras.layers.Layer):
    """Texts -> a multi-hot vector of hashed, lower-cased words."""

    def __init__(self, buckets: int, **kwargs):
        super().__init__(**kwargs)
        self.buckets = buckets

    def call(self, texts):
        texts = tf.strings.regex_replace(tf.strings.lower(tf.reshape(texts, [-1])), r"[^\w\s]", " ")
        ids = tf.strings.to_hash_bucket_fast(tf.strings.split(texts), self.buckets)
        counts = tf.math.bincount(ids, minlength=self.buckets, maxlength=self.buckets, binary_output=True, axis=-1)
        return tf.ensure_shape(tf.cast(counts, tf.float32), [None, self.buckets])

    def compute_output_shape(self, input_shape):
        return tf.TensorShape([input_shape[0], self.buckets])

    def get_config(self):
        return {**super().get_config(), "buckets": self.buckets}


def main() -> None:
    parser = argparse.ArgumentParser(allow_abbrev=False)  # PAI-TF adds flags of its own
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--global_batch", type=int, default=32)
    parser.add_argument("--hash_buckets", type=int, default=1024)
    parser.add_argument("--learning_rate", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=7)
    args, _unknown = parser.parse_known_args()

    keras.utils.set_random_seed(args.seed)
    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    ranks = strategy.num_replicas_in_sync
    names = pai.class_names()
    train = pai.dataset(shuffle=True, seed=args.seed, subset="training", cache=True)
    val = pai.dataset(subset="validation", cache=True)
    if len(names) < 2 or train.total_count < ranks:
        sys.exit(
            f"not enough labelled data to train: {train.total_count} labelled items in {len(names)} "
            f"class(es); label more items (at least 2 classes and {ranks} items) and submit again"
        )
    print(f"{train.total_count} training and {val.total_count} validation items, classes {names}", flush=True)

    fit = pai.fit_inputs(strategy, train, val, global_batch=args.global_batch)

    with strategy.scope():
        texts = keras.layers.Input(shape=(), dtype=tf.string, name="text")
        words = HashedWords(args.hash_buckets)(texts)
        model = keras.Model(texts, keras.layers.Dense(len(names), activation="softmax")(words))
        model.compile(
            optimizer=keras.optimizers.Adam(args.learning_rate),
            loss=keras.losses.SparseCategoricalCrossentropy(),
            metrics=["accuracy"],
        )
    model.fit(
        **fit,
        epochs=args.epochs,
        verbose=2,
        callbacks=[pai.keras_callback(every_n_batches=fit["steps_per_epoch"], keras=keras)],
    )

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text")])
    def serve(text):
        return {"probabilities": model(text, training=False)}

    # every rank saves (MWMS needs it); only the chief's folder is the job's model
    pai.save_model(model, signatures={"serving_default": serve}, class_names=names)


if __name__ == "__main__":
    main()
