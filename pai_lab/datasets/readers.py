"""Readers over manifest lines: labels from iTAG exports or folders, pandas frames, tf.data pipelines.

They take an iterable of manifest lines (from :func:`pai_lab.datasets.service.iter_items`
in-process, or from the client), so training code and notebooks read the same way.
Only the item index (sources and labels, a few strings per item) is held in memory;
contents are read lazily, per element, by tf.data.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Sequence
from typing import Any

STAGE_ORDER = ("-verify", "-check", "")  # the last word on an item wins: acceptance, then check, then labeling


def label_keys(line: dict) -> list[str]:
    return [k for k in line if k.startswith("label-")]


def export_result(line: dict) -> list | None:
    """The ``results`` of the most final labeling stage on a line (accept > check > label)."""
    keys = label_keys(line)
    if not keys:
        return None
    for suffix in STAGE_ORDER:
        for key in keys:
            task = key[len("label-") :]
            if (suffix and task.endswith(suffix)) or (not suffix and not task.endswith(("-check", "-verify"))):
                value = line[key]
                if isinstance(value, dict) and isinstance(value.get("results"), list):
                    return value["results"]
    return None


def class_label(line: dict) -> str | None:
    """The class of a classification item (the first survey answer), or None if unlabelled."""
    results = export_result(line)
    if not results:
        return None
    for result in results:
        if isinstance(result, dict) and str(result.get("type", "")).startswith("survey"):
            data = result.get("data")
            if isinstance(data, list):
                return str(data[0]) if data else None
            return None if data is None else str(data)
    return None


def boxes(line: dict) -> list[dict]:
    """Rectangles of a detection item as ``{"label", "xmin", "ymin", "xmax", "ymax"}`` in pixels."""
    out = []
    for result in export_result(line) or []:
        if not isinstance(result, dict) or result.get("type") != "image":
            continue
        for shape in result.get("data") or []:
            points = shape.get("value") or []
            if not points:
                continue
            xs, ys = [p[0] for p in points], [p[1] for p in points]
            labels = shape.get("labels") or {}
            label = next(iter(labels.values()), None) if isinstance(labels, dict) else None
            if isinstance(label, list):
                label = label[0] if label else None
            out.append({"label": label, "xmin": min(xs), "ymin": min(ys), "xmax": max(xs), "ymax": max(ys)})
    return out


def normalized_boxes(line: dict) -> tuple[list[str | None], list[list[float]], tuple[float, float]]:
    """(labels, boxes as [ymin, xmin, ymax, xmax] in pixels, (height, width) the answer names or (0, 0))."""
    height = width = 0.0
    for result in export_result(line) or []:
        if isinstance(result, dict) and result.get("type") == "image":
            height, width = float(result.get("height") or 0), float(result.get("width") or 0)
            break
    found = boxes(line)
    return ([b["label"] for b in found], [[b["ymin"], b["xmin"], b["ymax"], b["xmax"]] for b in found], (height, width))


def folder_label(key: str) -> str | None:
    """``cat/001.png`` -> ``cat``: the class of an item filed in a folder per class."""
    parts = key.replace("\\", "/").split("/")
    return parts[-2] if len(parts) >= 2 else None


def items_frame(items: Iterable[Any]):
    """Items (schema objects or dicts) as a DataFrame: index, key, source, size, stamp, label."""
    import pandas as pd

    rows = []
    for item in items:
        record = item.model_dump() if hasattr(item, "model_dump") else dict(item)
        line = record.get("line") or {}
        data = line.get("data") or {}
        row = {
            "index": record.get("index"),
            "key": record.get("key"),
            "source": data.get("source"),
            "size": record.get("size"),
            "stamp": record.get("stamp"),
            "label": class_label(line),
        }
        for field, value in data.items():
            if field != "source":
                row[f"data.{field}"] = value if not isinstance(value, (dict, list)) else json.dumps(value)
        rows.append(row)
    columns = ["index", "key", "source", "size", "stamp", "label"]
    frame = pd.DataFrame.from_records(rows) if rows else pd.DataFrame(columns=columns)
    if rows and frame["label"].isna().all():
        frame = frame.drop(columns=["label"])
    return frame


def frame_to_lines(frame, source: str | None = None) -> list[dict]:
    """DataFrame rows as manifest lines: every column goes under ``data``; ``source`` names the
    column that becomes ``data.source`` (default: a column called source, else the only column)."""
    columns = list(frame.columns)
    if source is None:
        if "source" in columns:
            source = "source"
        elif len(columns) == 1:
            source = columns[0]
        else:
            from pai_lab.errors import BadInput

            raise BadInput(f"which column holds the items? pass source=<column>; columns are {columns}", "source")
    lines = []
    for record in frame.to_dict("records"):
        data = {"source": record.pop(source)}
        for key, value in record.items():
            if hasattr(value, "item"):  # numpy scalars
                value = value.item()
            data[str(key)] = value
        lines.append({"data": data})
    return lines


# ---------------------------------------------------------------- tf.data


def shard_from_env() -> tuple[int, int] | None:
    """(number of workers, this worker's index) from TF_CONFIG, as PAI-TF and DLC ranks set it."""
    raw = os.environ.get("TF_CONFIG")
    if not raw:
        return None
    try:
        config = json.loads(raw)
    except ValueError:
        return None
    cluster, task = config.get("cluster") or {}, config.get("task") or {}
    readers = [
        *(("chief", i) for i in range(len(cluster.get("chief", [])))),
        *(("worker", i) for i in range(len(cluster.get("worker", [])))),
    ]
    me = (task.get("type"), int(task.get("index", 0)))
    if len(readers) <= 1 or me not in readers:
        return None
    return len(readers), readers.index(me)


def _shard_indices(count: int, shard: tuple[int, int] | None, by: str) -> list[int]:
    if not shard:
        return list(range(count))
    n, i = shard
    if not (n >= 1 and 0 <= i < n):
        raise ValueError(f"shard must be (number of shards, index < number), got {shard}")
    if by == "item":
        return list(range(i, count, n))
    if by == "file":
        start, stop = count * i // n, count * (i + 1) // n
        return list(range(start, stop))
    raise ValueError("shard_by is 'item' (every n-th item) or 'file' (a contiguous block per worker)")


def to_tf_dataset(
    lines: Iterable[dict],
    *,
    data_type: str = "image",
    keys: Sequence[str] | None = None,
    labels: str | None = "auto",
    class_names: Sequence[str] | None = None,
    image_size: tuple[int, int] = (64, 64),
    channels: int = 3,
    normalize: bool = True,
    batch_size: int | None = None,
    shuffle: bool = False,
    seed: int = 0,
    shard: tuple[int, int] | str | None = "auto",
    shard_by: str = "item",
    read_bytes: Callable[[str], bytes] | None = None,
    keep: Callable[[int], bool] | None = None,
    cache: bool | str = False,
):
    """A ``tf.data.Dataset`` of decoded images (float32, ``image_size``) or texts (tf.string), paired
    with integer labels when the items carry them.

    ``data_type`` "detection" pairs each image with ``{"boxes": [n, 4] (ymin, xmin, ymax, xmax in [0, 1]),
    "labels": [n] int64}`` (ragged when batched); items without boxes are left out.
    ``labels``: "auto" (an iTAG export on the lines, else one folder per class), "manifest", "folder"
    or None. ``keep(n)`` picks lines by position before sharding (a validation split).
    ``shard``: "auto" (from TF_CONFIG), (n, i) or None; ``shard_by`` "item" (every n-th)
    or "file" (contiguous blocks). ``read_bytes(source)`` reads sources that are not local files.
    ``cache``: True (memory) or a file path keeps the decoded items after their first pass, so later
    epochs read nothing again (then shuffling happens after the cache).
    The dataset has ``class_names`` like Keras' directory datasets.
    """
    import tensorflow as tf

    sources: list[str] = []
    raw_labels: list[str | None] = []
    item_keys: list[str] = []
    detection = data_type == "detection"
    item_boxes: list[tuple[list, list, tuple[float, float]]] = []
    for n, line in enumerate(lines):
        source = (line.get("data") or {}).get("source")
        if not isinstance(source, str) or (keep is not None and not keep(n)):
            continue
        sources.append(source)
        item_keys.append(keys[n] if keys is not None else source)
        if detection:
            item_boxes.append(normalized_boxes(line))
            raw_labels.append("boxes" if item_boxes[-1][1] else None)
        else:
            raw_labels.append(class_label(line) if labels in ("auto", "manifest") else None)
    if detection:
        found = sorted({str(b) for labs, _b, _s in item_boxes for b in labs if b is not None})
        names = list(class_names) if class_names else found
    if detection:
        pass
    elif labels == "auto" and not any(raw_labels):
        folders = [folder_label(k) for k in item_keys]
        if len({f for f in folders if f}) > 1:
            raw_labels = folders
    elif labels == "folder":
        raw_labels = [folder_label(k) for k in item_keys]
    use_labels = detection or (labels is not None and any(raw_labels))
    if not detection:
        names = list(class_names) if class_names else sorted({lab for lab in raw_labels if lab is not None})
    index_of = {name: i for i, name in enumerate(names)}

    if shard == "auto":
        shard = shard_from_env()
    usable = list(range(len(sources)))
    if detection:
        usable = [i for i in usable if raw_labels[i]]  # items without boxes are left out
    elif use_labels:
        usable = [i for i in usable if raw_labels[i] in index_of]  # unlabelled items are left out
    # shard what is left, so every rank gets its share (a rank with no items would stall the others)
    picked = [usable[j] for j in _shard_indices(len(usable), shard if isinstance(shard, tuple) else None, shard_by)]
    picked_sources = [sources[i] for i in picked]

    def read(source: str) -> bytes:
        local = source.removeprefix("file://")
        if "://" not in local and os.path.exists(local):
            with open(local, "rb") as fh:
                return fh.read()
        if read_bytes is not None:
            return read_bytes(source)
        import fsspec

        with fsspec.open(source, "rb") as fh:
            return fh.read()

    def load(source):
        return tf.py_function(lambda s: read(s.numpy().decode("utf-8", "surrogateescape")), [source], tf.string)

    texts_inline = data_type == "text" and not any(os.path.exists(s) or "://" in s for s in picked_sources[:20])
    ds = tf.data.Dataset.from_tensor_slices(
        tf.constant(picked_sources, dtype=tf.string) if picked_sources else tf.zeros([0], tf.string)
    )
    if detection:
        kept = [(labs, bxs, size) for i in picked for labs, bxs, size in [item_boxes[i]]]
        lengths = [len(bxs) for _labs, bxs, _s in kept]
        flat = [b for _labs, bxs, _s in kept for b in bxs]
        box_values = tf.RaggedTensor.from_row_lengths(
            tf.constant(flat, tf.float32, shape=(len(flat), 4)), tf.constant(lengths, tf.int64)
        )
        label_values = tf.RaggedTensor.from_row_lengths(
            tf.constant(
                [index_of.get(str(b), -1) for labs, _b, _s in kept for b in labs], tf.int64, shape=(len(flat),)
            ),
            tf.constant(lengths, tf.int64),
        )
        sizes = tf.constant([size for _l, _b, size in kept], tf.float32, shape=(len(kept), 2))
        ds = tf.data.Dataset.zip((ds, tf.data.Dataset.from_tensor_slices((box_values, label_values, sizes))))
    elif use_labels:
        ids = tf.constant([index_of[str(raw_labels[i])] for i in picked], dtype=tf.int64)  # all labelled (above)
        ds = tf.data.Dataset.zip((ds, tf.data.Dataset.from_tensor_slices(ids)))
    else:
        ds = ds.map(lambda s: (s,))

    def shuffled(ds):
        return ds.shuffle(min(len(picked_sources), 10_000) or 1, seed=seed, reshuffle_each_iteration=True)

    if shuffle and not cache:
        ds = shuffled(ds)  # before decoding: only names are held in the buffer

    if data_type in ("image", "detection"):
        height, width = image_size

        def decode(source, *rest):
            image = tf.io.decode_image(load(source), channels=channels, expand_animations=False)
            natural = tf.cast(tf.shape(image)[:2], tf.float32)
            image = tf.image.resize(image, (height, width))
            image.set_shape((height, width, channels))
            if normalize:
                image = image / 255.0
            if detection:
                item_boxes_px, item_labels, size = rest[0]
                # pixels of the image the answer was given on (its recorded size, else the file's own)
                size = tf.where(size > 0, size, natural)
                scale = tf.tile(size, [2])  # [h, w, h, w] for ymin, xmin, ymax, xmax
                return image, {"boxes": tf.clip_by_value(item_boxes_px / scale, 0.0, 1.0), "labels": item_labels}
            return (image, *rest) if rest else image
    elif texts_inline:

        def decode(source, *rest):
            return (source, *rest) if rest else source
    else:

        def decode(source, *rest):
            text = load(source)
            text.set_shape(())
            return (text, *rest) if rest else text

    ds = ds.map(decode, num_parallel_calls=tf.data.AUTOTUNE)
    if cache:
        ds = ds.cache(cache if isinstance(cache, str) else "")
        if shuffle:
            ds = shuffled(ds)
    if batch_size:
        ds = ds.ragged_batch(batch_size) if detection else ds.batch(batch_size)
    options = tf.data.Options()
    # sharding is done here, by item or file; tf.distribute must not shard it again
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
    ds = ds.with_options(options).prefetch(tf.data.AUTOTUNE)
    ds.class_names = list(names) if use_labels else []
    ds.item_count = len(picked_sources)
    return ds
