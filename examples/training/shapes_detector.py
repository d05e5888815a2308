"""Train a tiny box model on a job's detection data (a dataset or a labeling task's boxes).

    ws.jobs.submit(name="shapes", workers=2, code_source="examples/training",
                   data_sources=["task:shapes-boxes"],        # or a dataset: ["shapes"]
                   command="python /root/code/shapes_detector.py --epochs=40")

The model has K=3 slots; each predicts a box (ymin, xmin, ymax, xmax in [0, 1]), whether it holds an
object, and its class. An image's boxes fill the slots from left to right. Every 10th item is held out
for validation. The chief saves a SavedModel whose ``serving_default`` takes ``image_bytes`` and returns
``detection_boxes`` [N, 3, 4], ``detection_scores`` [N, 3] and ``detection_classes`` [N, 3] (an index into
class_names.json, saved beside it), as the TF Object Detection API names them. Legacy Keras (tf_keras)
under MultiWorkerMirroredStrategy; unknown flags (the PAI-TF ones) are ignored.
"""

import argparse
import os
import sys

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf
import tf_keras as keras

import pai_lab.training as pai

SLOTS = 3


def to_slots(image, target):
    """Boxes [n, 4] and labels [n] -> one row per slot: box, present (0/1), class; left to right."""
    order = tf.argsort(target["boxes"][:, 1])
    box = tf.gather(target["boxes"], order)[:SLOTS]
    label = tf.cast(tf.gather(target["labels"], order)[:SLOTS], tf.float32)
    rows = tf.concat([box, tf.ones_like(label)[:, None], label[:, None]], axis=1)
    rows = tf.pad(rows, [[0, SLOTS - tf.shape(rows)[0]], [0, 0]])
    return image, tf.ensure_shape(rows, (SLOTS, 6))


def slot_loss(y_true, y_pred):
    present, label = y_true[..., 4], tf.cast(y_true[..., 5], tf.int32)
    objectness = keras.losses.binary_crossentropy(present[..., None], y_pred[..., 4:5], from_logits=True)
    box = tf.reduce_sum(tf.abs(y_true[..., :4] - tf.sigmoid(y_pred[..., :4])), axis=-1)
    cls = keras.losses.sparse_categorical_crossentropy(label, y_pred[..., 5:], from_logits=True)
    return tf.reduce_mean(objectness + present * (4.0 * box + cls), axis=-1)


def main() -> None:
    parser = argparse.ArgumentParser(allow_abbrev=False)  # PAI-TF adds flags of its own
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--global_batch", type=int, default=16)
    parser.add_argument("--image_size", type=int, default=32)
    parser.add_argument("--learning_rate", type=float, default=0.003)
    parser.add_argument("--seed", type=int, default=7)
    args, _unknown = parser.parse_known_args()

    keras.utils.set_random_seed(args.seed)
    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    ranks = strategy.num_replicas_in_sync
    size = (args.image_size, args.image_size)
    names = pai.class_names()
    train = pai.dataset(image_size=size, shuffle=True, seed=args.seed, subset="training", cache=True)
    val = pai.dataset(image_size=size, subset="validation", cache=True)
    if not names or train.total_count < ranks:
        sys.exit(
            f"not enough boxes to train: {train.total_count} images with boxes, classes {names}; draw "
            f"boxes on at least {ranks} images and submit again"
        )
    print(f"{train.total_count} training and {val.total_count} validation images, classes {names}", flush=True)

    fit = pai.fit_inputs(strategy, train, val, global_batch=args.global_batch, prepare=to_slots)

    with strategy.scope():
        model = keras.Sequential(
            [
                keras.layers.Input(shape=(*size, 3)),
                keras.layers.Conv2D(16, 3, activation="relu", padding="same"),
                keras.layers.MaxPooling2D(),
                keras.layers.Conv2D(32, 3, activation="relu", padding="same"),
                keras.layers.MaxPooling2D(),
                keras.layers.Flatten(),
                keras.layers.Dense(128, activation="relu"),
                keras.layers.Dense(SLOTS * (5 + len(names))),
                keras.layers.Reshape((SLOTS, 5 + len(names))),
            ]
        )
        model.compile(optimizer=keras.optimizers.Adam(args.learning_rate), loss=slot_loss)
    model.fit(
        **fit,
        epochs=args.epochs,
        verbose=2,
        callbacks=[pai.keras_callback(every_n_batches=fit["steps_per_epoch"], keras=keras)],
    )

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="image_bytes")])
    def serve(image_bytes):
        def decode(data):
            image = tf.io.decode_image(data, channels=3, expand_animations=False)
            image = tf.image.resize(image, size) / 255.0
            image.set_shape((*size, 3))
            return image

        out = model(tf.map_fn(decode, image_bytes, fn_output_signature=tf.TensorSpec((*size, 3))), training=False)
        probabilities = tf.nn.softmax(out[..., 5:])
        return {
            "detection_boxes": tf.sigmoid(out[..., :4]),
            "detection_scores": tf.sigmoid(out[..., 4]) * tf.reduce_max(probabilities, axis=-1),
            "detection_classes": tf.argmax(probabilities, axis=-1),
        }

    # every rank saves (MWMS needs it); only the chief's folder is the job's model
    pai.save_model(model, signatures={"serving_default": serve}, class_names=names)


if __name__ == "__main__":
    main()
