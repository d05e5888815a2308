"""TFRecord shards for training, in the spirit of EasyVision's ``convert`` command.

Options (EasyVision's names): ``model_type`` (CLASSIFICATION, DETECTION or TEXT_END2END; by
default from the template), ``test_ratio`` (0.1), ``num_samples_per_tfrecord`` (256),
``image_format`` (jpg or png: images are re-encoded to it), ``max_image_size`` (longest side;
larger images are shrunk, boxes stay relative), ``seed`` (0, for the train/test draw).

``to`` is a prefix: shards are ``<prefix>_train_00000.tfrecord``, ``<prefix>_test_00000.tfrecord``
and the class list ``<prefix>_class_list.txt`` (line k is class id k).

Feature schema (``tf.train.Example``), readable with :data:`FEATURES` and
``tf.io.parse_single_example``:

============================  ========  ==============================================
key                           type      meaning
============================  ========  ==============================================
image/encoded                 bytes     the image, encoded as image/format
image/format                  bytes     jpeg or png
image/height, image/width     int64     size after any resize
image/filename                bytes     the item's source URI
image/key                     bytes     the item's position in the task
image/class/label             int64[]   classification: class ids
image/class/text              bytes[]   classification: class names
image/object/bbox/xmin ...    float[]   detection, OCR: boxes, 0-1 (xmin ymin xmax ymax)
image/object/class/label      int64[]   detection, OCR: class id per box (-1: none)
image/object/class/text       bytes[]   class name per box
image/object/polygon          float[]   every box's vertices x,y, 0-1, concatenated
image/object/polygon/size     int64[]   number of vertices of each box
image/object/text             bytes[]   OCR: the transcript per box
============================  ========  ==============================================
"""

from __future__ import annotations

import io
import json
import os
import random
import tempfile

import fsspec

from pai_lab.errors import BadInput
from pai_lab.labeling.formats import ExportContext, bbox, shape_labels, zip_results

NAME = "tfrecord"
MODEL_TYPES = ("CLASSIFICATION", "DETECTION", "TEXT_END2END")


def fits(ctx: ExportContext) -> None:
    model_type(ctx)
    if ctx.spec.contents[0].type != "image":
        raise BadInput(f"TFRecord conversion reads images; this template labels {ctx.spec.contents[0].type}", "format")


def model_type(ctx: ExportContext) -> str:
    given = ctx.options.get("model_type")
    kinds = {q.type for q in ctx.spec.questions}
    default = (
        "TEXT_END2END"
        if any(q.text_title for q in ctx.spec.questions if q.type == "boxes")
        else "DETECTION"
        if "boxes" in kinds
        else "CLASSIFICATION"
        if kinds & {"single", "multi"}
        else None
    )
    mt = (given or default or "").upper()
    if mt not in MODEL_TYPES:
        raise BadInput(
            f"options.model_type {given or '(none fits this template)'!r}: use one of {', '.join(MODEL_TYPES)}",
            "options.model_type",
        )
    return mt


def features():
    import tensorflow as tf

    var = tf.io.VarLenFeature
    return {
        "image/encoded": tf.io.FixedLenFeature([], tf.string),
        "image/format": tf.io.FixedLenFeature([], tf.string),
        "image/height": tf.io.FixedLenFeature([], tf.int64),
        "image/width": tf.io.FixedLenFeature([], tf.int64),
        "image/filename": tf.io.FixedLenFeature([], tf.string),
        "image/key": tf.io.FixedLenFeature([], tf.string),
        "image/class/label": var(tf.int64),
        "image/class/text": var(tf.string),
        "image/object/bbox/xmin": var(tf.float32),
        "image/object/bbox/ymin": var(tf.float32),
        "image/object/bbox/xmax": var(tf.float32),
        "image/object/bbox/ymax": var(tf.float32),
        "image/object/class/label": var(tf.int64),
        "image/object/class/text": var(tf.string),
        "image/object/polygon": var(tf.float32),
        "image/object/polygon/size": var(tf.int64),
        "image/object/text": var(tf.string),
    }


def _example(
    tf,
    encoded: bytes,
    fmt: str,
    w: int,
    h: int,
    source: str,
    seq: int,
    classes: list[int],
    class_text: list[str],
    objects: list[dict],
):
    def b(values):
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=values))

    def i(values):
        return tf.train.Feature(int64_list=tf.train.Int64List(value=values))

    def f(values):
        return tf.train.Feature(float_list=tf.train.FloatList(value=values))

    feats = {
        "image/encoded": b([encoded]),
        "image/format": b([fmt.encode()]),
        "image/height": i([h]),
        "image/width": i([w]),
        "image/filename": b([source.encode()]),
        "image/key": b([str(seq).encode()]),
        "image/class/label": i(classes),
        "image/class/text": b([t.encode() for t in class_text]),
    }
    if objects:
        for k in ("xmin", "ymin", "xmax", "ymax"):
            feats[f"image/object/bbox/{k}"] = f([o[k] for o in objects])
        feats["image/object/class/label"] = i([o["label"] for o in objects])
        feats["image/object/class/text"] = b([o["name"].encode() for o in objects])
        feats["image/object/polygon"] = f([c for o in objects for c in o["polygon"]])
        feats["image/object/polygon/size"] = i([len(o["polygon"]) // 2 for o in objects])
        feats["image/object/text"] = b([o["text"].encode() for o in objects])
    return tf.train.Example(features=tf.train.Features(feature=feats))


def export_to(ctx: ExportContext, fs, prefix: str) -> list[str]:
    import tensorflow as tf
    from PIL import Image

    mt = model_type(ctx)
    opts = ctx.options
    test_ratio = float(opts.get("test_ratio", 0.1))
    per_shard = int(opts.get("num_samples_per_tfrecord", 256))
    fmt = {"jpg": "jpeg", "jpeg": "jpeg", "png": "png"}.get(str(opts.get("image_format", "jpg")).lower())
    if fmt is None:
        raise BadInput("options.image_format must be jpg or png", "options.image_format")
    if not 0 <= test_ratio < 1 or per_shard < 1:
        raise BadInput("options.test_ratio must be in [0, 1) and num_samples_per_tfrecord >= 1", "options")
    max_size = opts.get("max_image_size")
    draw = random.Random(int(opts.get("seed", 0)))
    class_ids = {n: k for k, n in enumerate(ctx.labels)}
    parent = prefix.rsplit("/", 1)[0] if "/" in prefix else ""
    if parent:
        fs.makedirs(parent, exist_ok=True)
    files: list[str] = []
    writers: dict[str, list] = {}  # split -> [writer, count in shard, shard number, path]

    def writer(split: str):
        w = writers.get(split)
        if w is None or w[1] >= per_shard:
            if w is not None:
                _finish(fs, w, f"{prefix}_{split}_{w[2]:05d}.tfrecord")
            n = 0 if w is None else w[2] + 1
            local = _local_tmp()
            files.append(f"{prefix}_{split}_{n:05d}.tfrecord")
            w = writers[split] = [tf.io.TFRecordWriter(local), 0, n, local]
        return w

    for r in ctx.rows():
        split = "test" if draw.random() < test_ratio else "train"
        if r.final is None:
            continue
        data = json.loads(r.data)
        source = str(data.get(ctx.spec.contents[0].key))
        try:
            with fsspec.open(ctx.readable(source), "rb") as fh:
                image = Image.open(io.BytesIO(fh.read()))
                image.load()
        except (OSError, ValueError) as exc:
            raise BadInput(f"cannot read image {source!r} of item {r.seq}: {exc}", "to") from None
        if max_size and max(image.size) > int(max_size):
            image.thumbnail((int(max_size), int(max_size)))
        w, h = image.size
        out = io.BytesIO()
        image.convert("RGB" if fmt == "jpeg" else image.mode).save(out, format=fmt.upper())
        classes, class_text, objects = [], [], []
        for q, el in zip_results(ctx.spec, json.loads(r.final)):
            if q.type in ("single", "multi") and mt == "CLASSIFICATION":
                names = el["data"] if isinstance(el["data"], list) else [el["data"]]
                class_text += names
                classes += [class_ids.get(n, -1) for n in names]
            elif q.type == "boxes" and mt in ("DETECTION", "TEXT_END2END"):
                ew, eh = el["width"], el["height"]
                for s in el["data"]:
                    labels = shape_labels(q, s["labels"])
                    x1, y1, x2, y2 = bbox(s["value"])
                    objects.append(
                        {
                            "xmin": x1 / ew,
                            "ymin": y1 / eh,
                            "xmax": x2 / ew,
                            "ymax": y2 / eh,
                            "label": class_ids.get(labels[0], -1) if labels else -1,
                            "name": labels[0] if labels else "",
                            "polygon": [c / (ew if k % 2 == 0 else eh) for p in s["value"] for k, c in enumerate(p)],
                            "text": s["labels"].get(q.text_title, "") if q.text_title else "",
                        }
                    )
        w_ = writer(split)
        w_[0].write(
            _example(tf, out.getvalue(), fmt, w, h, source, r.seq, classes, class_text, objects).SerializeToString()
        )
        w_[1] += 1
    for split, shard in writers.items():
        _finish(fs, shard, f"{prefix}_{split}_{shard[2]:05d}.tfrecord")
    with fs.open(f"{prefix}_class_list.txt", "w") as f:
        f.write("".join(n + "\n" for n in ctx.labels))
    files.append(f"{prefix}_class_list.txt")
    return files


def _local_tmp() -> str:
    # TFRecordWriter writes local files; shards are moved to `to` (local or s3://) when full
    fd, path = tempfile.mkstemp(suffix=".tfrecord")
    os.close(fd)
    return path


def _finish(fs, w: list, target: str) -> None:
    w[0].close()
    try:
        fs.put(w[3], target)
    finally:
        os.remove(w[3])
