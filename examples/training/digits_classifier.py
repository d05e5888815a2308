"""Train a small image classifier on a job's data source (a dataset or a labeling task's answers).

    ws.jobs.submit(name="digits", workers=2, code_source="examples/training",
                   data_sources=["task:digits-labels"],      # or a dataset: ["digits"], ["digits:2"]
                   command="python /root/code/digits_classifier.py --epochs=30")

Every rank reads its share with ``pai.dataset()``; every 10th item is held out for validation
(``--validation_every=0``: none, every label trains, as the closed loop's small rounds want). The
chief saves a SavedModel whose ``serving_default`` takes encoded images (``image_bytes``, decoded and
resized inside the graph) and returns ``probabilities``, with ``class_names.json`` beside it.
Legacy Keras (tf_keras) is used on purpose: Keras 3's model.fit does not run under
MultiWorkerMirroredStrategy in TensorFlow 2.16+. Unknown flags (the PAI-TF ones) are ignored.
"""

import argparse
import os
import sys

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf
import tf_keras as keras

import pai_lab.training as pai


def main() -> None:
    parser = argparse.ArgumentParser(allow_abbrev=False)  # PAI-TF adds flags of its own
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--global_batch", type=int, default=32)
    parser.add_argument("--image_size", type=int, default=16)
    parser.add_argument("--channels", type=int, default=1)
    parser.add_argument("--learning_rate", type=float, default=0.003)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--validation_every", type=int, default=10, help="every N-th item held out for validation; 0: none"
    )
    parser.add_argument("--shuffle", type=int, default=1, help="0: items in their order (reproducible batches)")
    args, _unknown = parser.parse_known_args()

    keras.utils.set_random_seed(args.seed)
    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    ranks = strategy.num_replicas_in_sync
    size = (args.image_size, args.image_size)
    names = pai.class_names()
    every = args.validation_every
    if every == 1 or every < 0:
        sys.exit(f"--validation_every={every}: hold out every N-th item (N >= 2), or 0 for no validation")
    train = pai.dataset(
        image_size=size,
        channels=args.channels,
        shuffle=bool(args.shuffle),
        seed=args.seed,
        subset="training" if every else None,
        validation_every=every or 10,
        cache=True,
    )
    val = None
    if every:
        val = pai.dataset(
            image_size=size, channels=args.channels, subset="validation", validation_every=every, cache=True
        )
    if len(names) < 2 or train.total_count < ranks:
        sys.exit(
            f"not enough labelled data to train: {train.total_count} labelled items in {len(names)} "
            f"class(es); label more items (at least 2 classes and {ranks} items) and submit again"
        )
    held = val.total_count if val is not None else 0
    print(f"{train.total_count} training and {held} validation items, classes {names}", flush=True)

    fit = pai.fit_inputs(strategy, train, val, global_batch=args.global_batch)

    with strategy.scope():
        model = keras.Sequential(
            [
                keras.layers.Input(shape=(*size, args.channels)),
                keras.layers.Conv2D(16, 3, activation="relu", padding="same"),
                keras.layers.MaxPooling2D(),
                keras.layers.Flatten(),
                keras.layers.Dense(64, activation="relu"),
                keras.layers.Dense(len(names), activation="softmax"),
            ]
        )
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

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="image_bytes")])
    def serve(image_bytes):
        def decode(data):
            # the same decoding as pai.dataset: decode, resize, scale to [0, 1]
            image = tf.io.decode_image(data, channels=args.channels, expand_animations=False)
            image = tf.image.resize(image, size) / 255.0
            image.set_shape((*size, args.channels))
            return image

        images = tf.map_fn(decode, image_bytes, fn_output_signature=tf.TensorSpec((*size, args.channels)))
        return {"probabilities": model(images, training=False)}

    # every rank saves (MWMS needs it); only the chief's folder is the job's model
    pai.save_model(model, signatures={"serving_default": serve}, class_names=names)


if __name__ == "__main__":
    main()
