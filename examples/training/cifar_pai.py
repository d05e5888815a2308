"""Image classification on CIFAR-10's python batches, as the manual's PAI-TF case (`cifar_pai.py`).

    pai -name tensorflow1120_ext -Dscript=examples/training/cifar_pai.py
        -Dbuckets=data/cifar-10-batches-py/ -DcheckpointDir=data/check_point/
        -Dcluster='{"worker":{"count":2}}'

``--buckets`` is a folder in CIFAR's on-disk format: ``data_batch_1`` ... ``data_batch_5`` and
``test_batch`` (pickled dicts: ``data`` N x 3072 uint8, the red, green and blue planes of each 32x32
image, and ``labels``) and ``batches.meta`` (``label_names``). Each worker trains on its share of the
training batches under MultiWorkerMirroredStrategy and validates on ``test_batch``. The manual's
TFLearn network, smaller: convolutions and pooling, a dense layer, dropout, softmax; scaling to [0, 1]
happens inside the model, so the service takes raw pixels. The chief saves a SavedModel whose
``serving_default`` takes encoded images (``image_bytes``: PNG or JPEG of any size, resized to 32x32
bicubic as the manual's prediction code does) and returns ``probabilities``, with the class names
beside it; checkpoints go to ``--checkpointDir``.
"""

import argparse
import os
import pickle

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")  # Keras 3's fit does not run under MultiWorkerMirroredStrategy
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import tensorflow as tf
import tf_keras as keras

import pai_lab.training as pai


def _field(batch: dict, name: str):
    return batch[name.encode()] if name.encode() in batch else batch[name]  # python 2 pickles have bytes keys


def load_batch(path: str) -> tuple[np.ndarray, np.ndarray]:
    with tf.io.gfile.GFile(path, "rb") as f:
        batch = pickle.load(f, encoding="bytes")
    data = np.asarray(_field(batch, "data"), dtype=np.uint8).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return data, np.asarray(_field(batch, "labels"), dtype=np.int64)


def load(buckets: str):
    names = [n.decode() if isinstance(n, bytes) else n for n in _field(_read(buckets, "batches.meta"), "label_names")]
    files = sorted(f for f in tf.io.gfile.listdir(buckets) if f.startswith("data_batch_"))
    parts = [load_batch(os.path.join(buckets, f)) for f in files]
    train = (np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]))
    return names, train, load_batch(os.path.join(buckets, "test_batch"))


def _read(folder: str, name: str) -> dict:
    with tf.io.gfile.GFile(os.path.join(folder, name), "rb") as f:
        return pickle.load(f, encoding="bytes")


def main() -> None:
    parser = argparse.ArgumentParser(allow_abbrev=False)
    parser.add_argument("--buckets", required=True, help="the cifar-10-batches-py folder")
    parser.add_argument("--checkpointDir", default="")
    parser.add_argument("--task_index", type=int, default=0)
    parser.add_argument("--worker_hosts", default="")
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--global_batch", type=int, default=64)
    parser.add_argument("--learning_rate", type=float, default=0.002)
    args, _ = parser.parse_known_args()
    workers = len([h for h in args.worker_hosts.split(",") if h]) or 1

    keras.utils.set_random_seed(7)
    names, (x, y), (x_test, y_test) = load(args.buckets)
    print(f"{len(x)} training and {len(x_test)} test images, classes {names}", flush=True)
    strategy = tf.distribute.MultiWorkerMirroredStrategy()

    def share(images, labels, shuffle):
        def make(context):
            part = tf.data.Dataset.from_tensor_slices((images, labels)).shard(workers, args.task_index)
            part = part.shuffle(len(images), seed=7) if shuffle else part
            return part.repeat().batch(context.get_per_replica_batch_size(args.global_batch))

        return strategy.distribute_datasets_from_function(make)

    with strategy.scope():
        model = keras.Sequential(
            [
                keras.layers.Input(shape=(32, 32, 3)),
                keras.layers.Rescaling(1 / 255.0),
                keras.layers.RandomFlip("horizontal"),
                keras.layers.Conv2D(16, 3, activation="relu", padding="same"),
                keras.layers.MaxPooling2D(),
                keras.layers.Conv2D(32, 3, activation="relu", padding="same"),
                keras.layers.MaxPooling2D(),
                keras.layers.Flatten(),
                keras.layers.Dense(64, activation="relu"),
                keras.layers.Dropout(0.3),
                keras.layers.Dense(len(names), activation="softmax"),
            ]
        )
        model.compile(
            optimizer=keras.optimizers.Adam(args.learning_rate),
            loss=keras.losses.SparseCategoricalCrossentropy(),
            metrics=["accuracy"],
        )
    steps = -(-len(x) // args.global_batch)
    callbacks = [pai.keras_callback(every_n_batches=steps, keras=keras)]
    if args.checkpointDir:  # the manual's check_point folder: the weights after each epoch
        target = args.checkpointDir if pai.is_chief() else os.path.join(pai.model_dir(), "check_point")
        callbacks.append(keras.callbacks.ModelCheckpoint(os.path.join(target, "model.ckpt"), save_weights_only=True))
    model.fit(
        share(x, y, True),
        steps_per_epoch=steps,
        validation_data=share(x_test, y_test, False),
        validation_steps=-(-len(x_test) // args.global_batch),
        epochs=args.epochs,
        verbose=2,
        callbacks=callbacks,
    )

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="image_bytes")])
    def serve(image_bytes):
        def decode(data):
            image = tf.io.decode_image(data, channels=3, expand_animations=False)
            image = tf.image.resize(image, (32, 32), method="bicubic")
            return tf.clip_by_value(image, 0.0, 255.0)

        images = tf.map_fn(decode, image_bytes, fn_output_signature=tf.TensorSpec((32, 32, 3)))
        return {"probabilities": model(images, training=False)}

    pai.save_model(model, signatures={"serving_default": serve}, class_names=names)


if __name__ == "__main__":
    main()
