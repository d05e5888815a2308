"""TFRecord shards for training: EasyVision's ``convert``, from a task or an EasyVision CSV.

The options are ``convert_param_config``'s (:mod:`.convert_options`): ``model_type`` (by default
what the template holds), ``class_list_file`` / ``class_list``, ``test_ratio`` (0.1),
``num_samples_per_tfrecord`` (256), ``max_image_size`` / ``max_test_image_size``,
``image_format`` (jpg or png), ``default_class``, ``error_class``, ``ignore_class``,
``unknown_class`` (raise, ignore or default), ``seperator``, ``read_parallel_num`` (threads
reading images), the text and video options, and ``seed`` (0) for the train/test draw.

``to`` is a prefix: shards are ``<prefix>_train_00000.tfrecord``, ``<prefix>_test_00000.tfrecord``
and the class list ``<prefix>_class_list.txt`` (line k is class id k). The features of each model
type are in :mod:`.tfrecord_types`; read them with ``features(model_type)`` and
``tf.io.parse_single_example``.
"""

from __future__ import annotations

import os
import random
import tempfile
import uuid
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor

import fsspec

from pai_lab.errors import BadInput
from pai_lab.labeling.formats import ExportContext
from pai_lab.labeling.formats import convert_options as co
from pai_lab.labeling.formats import easyvision as ev
from pai_lab.labeling.formats import easyvision_masks as masks
from pai_lab.labeling.formats import easyvision_shapes as shapes
from pai_lab.labeling.formats.tfrecord_types import TextTools, example, features  # noqa: F401 - features: the read spec

NAME = "tfrecord"
MODEL_TYPES = co.MODEL_TYPES
SHAPE_FOR = {
    "DETECTION": "detection",
    "INSTANCE_SEGMENTATION": "detection",
    "SEGMENTATION": "segmentation",
    "TEXT_DETECTION": "text-detection",
    "TEXT_END2END": "text-end2end",
    "TEXT_RECOGNITION": "text-recognition",
}
DEFAULT_TYPE = {
    "classification": "CLASSIFICATION",
    "multi-label": "CLASSIFICATION",
    "detection": "DETECTION",
    "text-recognition": "TEXT_RECOGNITION",
    "text-detection": "TEXT_DETECTION",
    "text-end2end": "TEXT_END2END",
}


def _task_options(ctx: ExportContext) -> tuple[co.ConvertOptions, str]:
    """The checked options and the answer shape the task's items are read in."""
    video = ctx.spec.contents[0].type == "video"
    default = None
    if video:
        default = "VIDEO_CLASSIFICATION"
    elif ctx.spec.contents[0].type == "image":
        try:
            default = DEFAULT_TYPE[ev.shape(ExportContext(**{**ctx.__dict__, "options": {}}))]
        except BadInput:
            default = None
    opts = co.read(ctx.options, default)
    mt = opts.model_type
    if (mt == "VIDEO_CLASSIFICATION") != video:
        raise BadInput(
            f"options.model_type {mt}: the {ctx.template} template labels {ctx.spec.contents[0].type}s",
            "options.model_type",
        )
    kind = SHAPE_FOR.get(mt) or next(
        (
            ("multi-label" if q.type == "multi" else "classification")
            for q in ctx.spec.questions
            if q.type in ("single", "multi")
        ),
        "classification",
    )
    if shapes.question_for(ctx.spec, kind) is None:
        raise BadInput(
            f"options.model_type {mt}: the {ctx.template} template has no {kind} question to convert",
            "options.model_type",
        )
    return opts, kind


def fits(ctx: ExportContext) -> None:
    _task_options(ctx)


def export_to(ctx: ExportContext, fs, prefix: str) -> list[str]:
    opts, kind = _task_options(ctx)
    ctx.notes.extend(opts.notes)
    if opts.model_type == "SEGMENTATION":
        names = ctx.labels if masks.class_offset(ctx.labels) == 0 else ["background", *ctx.labels]
        classes = co.ClassMap(opts, names)
    else:
        entries = opts.class_list if opts.class_list is not None else None
        if opts.class_list_file:
            entries = read_lines(read_source(ctx.readable), opts.class_list_file)
        classes = co.ClassMap(opts, entries, ctx.labels)
    text = text_tools(opts, read_source(ctx.readable))
    return write(ev.samples(ctx, kind), opts, fs, prefix, read_source(ctx.readable), classes, text)


def read_source(readable: Callable[[str], str], storage_options: dict | None = None) -> Callable[..., bytes]:
    """Bytes of a source, through ``readable`` (the server's policy); ``storage_options`` for object stores."""

    from pai_lab.labeling.media import MAX_MEDIA_BYTES

    def read(source: str, limit: int = MAX_MEDIA_BYTES) -> bytes:
        """At most ``limit`` bytes (its size is asked first): a larger file is a 400, never read into memory."""
        where = readable(source)
        options = storage_options if storage_options and "://" in where and not where.startswith("file://") else {}
        try:
            fs, path = fsspec.core.url_to_fs(where, **options)
            if (fs.size(path) or 0) <= limit:
                with fs.open(path, "rb") as fh:
                    data = fh.read(limit + 1)
                if len(data) <= limit:
                    return data
        except (OSError, ValueError) as exc:
            raise BadInput(f"cannot read {source!r}: {exc}", "label_file") from None
        raise BadInput(f"{source!r} is over {limit >> 20} MiB; split it or make it smaller", "label_file")

    return read


def read_lines(read: Callable[[str], bytes], path: str) -> list[str]:
    try:
        text = read(path).decode("utf-8-sig")
    except UnicodeDecodeError:
        raise BadInput(f"{path!r} is not UTF-8 text", "options") from None
    return [line.rstrip("\r") for line in text.split("\n") if line.strip()]


def text_tools(opts: co.ConvertOptions, read: Callable[[str], bytes]) -> TextTools:
    replace = None
    if opts.char_replace_map_path:
        import csv

        replace = []
        for row in csv.reader(read_lines(read, opts.char_replace_map_path)):
            if len(row) != 2:
                raise BadInput("char_replace_map_path: each line is original,replaced", "options.char_replace_map_path")
            if row != ["original", "replaced"]:
                replace.append((row[0], row[1]))
    chars = None
    if opts.default_char_dict_path:
        chars = [line for line in read(opts.default_char_dict_path).decode("utf-8-sig").split("\n")]
        while chars and chars[-1] == "":
            chars.pop()
    return TextTools(replace, chars)


def write(
    samples: Iterable[ev.Sample],
    opts: co.ConvertOptions,
    fs,
    prefix: str,
    read: Callable[[str], bytes],
    classes: co.ClassMap,
    text: TextTools,
    converter=None,
) -> list[str]:
    """Write the samples' examples into train and test shards and the class list; the paths written."""
    import tensorflow as tf

    draw = random.Random(opts.seed)
    parent = prefix.rsplit("/", 1)[0] if "/" in prefix else ""
    if parent:
        fs.makedirs(parent, exist_ok=True)
    files: list[str] = []
    shards: dict[str, list] = {}  # split -> [writer, count in shard, shard number, local path]
    finished: list[list] = []

    def shard(split: str) -> list:
        w = shards.get(split)
        if w is None or w[1] >= opts.num_samples_per_tfrecord:
            if w is not None:
                _finish(fs, w, f"{prefix}_{split}_{w[2]:05d}.tfrecord")
                finished.append(w)
            n = 0 if w is None else w[2] + 1
            fd, local = tempfile.mkstemp(suffix=".tfrecord")
            os.close(fd)
            files.append(f"{prefix}_{split}_{n:05d}.tfrecord")
            w = shards[split] = [tf.io.TFRecordWriter(local), 0, n, local]
        return w

    try:
        for sample, media, mask in _read_all(samples, read, opts.read_parallel_num):
            split = "test" if draw.random() < opts.test_ratio else "train"
            size = opts.max_test_image_size if split == "test" else opts.max_image_size
            ex = example(tf, opts, sample.key, sample.url, sample.answer, media, size, classes, text, mask, converter)
            if ex is None:
                continue
            w = shard(split)
            w[0].write(ex.SerializeToString())
            w[1] += 1
        for split, w in list(shards.items()):
            del shards[split]
            _finish(fs, w, f"{prefix}_{split}_{w[2]:05d}.tfrecord")
            finished.append(w)
    except BaseException:
        for w in shards.values():
            w[0].close()
            os.remove(w[3])
        for w in finished:  # a failed conversion leaves no shards behind, and the earlier ones as they were
            try:
                fs.rm(w[-1])
            except Exception:  # noqa: BLE001, S110 - best effort; the error below is what matters
                pass
        raise
    for w in finished:  # complete: the shards take their names
        fs.mv(w[-1], w[-1].rsplit(".tmp-", 1)[0])
    with fs.open(f"{prefix}_class_list.txt", "wb") as f:
        f.write("".join(n + "\n" for n in classes.names).encode("utf-8"))
    files.append(f"{prefix}_class_list.txt")
    return files


def _read_all(samples: Iterable[ev.Sample], read: Callable[[str], bytes], threads: int) -> Iterator[tuple]:
    """(sample, media bytes, mask ids) in order, ``threads`` reads at a time."""

    def load(sample: ev.Sample):
        media = read(sample.url)
        mask = sample.mask
        if mask is None and isinstance(sample.answer, dict) and sample.answer.get("ossUrl"):
            mask = masks.decode(read(sample.answer["ossUrl"]), f"item {sample.key}: mask {sample.answer['ossUrl']!r}")
        return sample, media, mask

    batch: list[ev.Sample] = []
    with ThreadPoolExecutor(threads, thread_name_prefix="convert-read") as pool:
        for sample in samples:
            batch.append(sample)
            if len(batch) >= threads * 4:
                yield from pool.map(load, batch)
                batch = []
        yield from pool.map(load, batch)


def _finish(fs, w: list, target: str) -> None:
    """Close a shard and copy it to ``target`` under a temporary name (moved into place at the end)."""
    w[0].close()
    temporary = f"{target}.tmp-{uuid.uuid4().hex[:8]}"
    try:
        fs.put(w[3], temporary)
    finally:
        os.remove(w[3])
    w.append(temporary)
