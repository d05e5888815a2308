"""One ``tf.train.Example`` per item, for each of EasyVision's model types.

Every example has ``image/key`` (the CSV's 数据ID) and ``image/filename`` (its url); images are
re-encoded to ``image_format`` after any resize (``max_image_size``), with ``image/encoded``,
``image/format``, ``image/height``, ``image/width``. Coordinates are 0-1 of the image.

=======================  ==========================================================================
model_type               features
=======================  ==========================================================================
CLASSIFICATION           ``image/class/label`` int64[] (class list ids), ``image/class/text`` bytes[]
DETECTION                ``image/object/bbox/{xmin,ymin,xmax,ymax}`` float[], ``image/object/class/label``
                         int64[], ``image/object/class/text`` bytes[], ``image/object/ignore`` int64[]
                         (1: ignore_class), ``image/object/polygon`` float[] (x, y of every vertex,
                         boxes one after another) with ``image/object/polygon/size`` int64[]
INSTANCE_SEGMENTATION    DETECTION's, and ``image/object/mask`` bytes[]: one PNG per object (1 inside)
SEGMENTATION             ``image/segmentation/class/encoded`` (a one-channel PNG of class ids, the
                         image's size) and ``image/segmentation/class/format``
TEXT_DETECTION           DETECTION's, ``image/object/direction`` int64[] and ``image/orientation``
                         int64 (index in 底部朝下, 底部朝上, 底部朝左, 底部朝右)
TEXT_END2END             TEXT_DETECTION's, ``image/object/text`` bytes[]; with a character dictionary
                         ``image/object/text/label`` int64[] (all lines) and ``image/object/text/length``
TEXT_RECOGNITION         ``image/text`` bytes; with a character dictionary ``image/text/label`` int64[]
VIDEO_CLASSIFICATION     CLASSIFICATION's, ``video/frames`` bytes[] (JPEG, reshape_size square, one
                         every 1/sample_fps s), ``video/frame_count`` int64, ``video/fps`` float
=======================  ==========================================================================
"""

from __future__ import annotations

import io
import os
import tempfile
from typing import Any

import numpy as np
from PIL import Image

from pai_lab.errors import BadInput
from pai_lab.labeling.formats import easyvision_masks as masks
from pai_lab.labeling.formats import easyvision_shapes as shapes
from pai_lab.labeling.formats.convert_options import BOX_TYPES, ClassMap, ConvertOptions

ACCEPTS = {
    "CLASSIFICATION": ("classification", "multi-label"),
    "VIDEO_CLASSIFICATION": ("classification", "multi-label"),
    "DETECTION": ("detection", "text-detection", "text-end2end"),
    "INSTANCE_SEGMENTATION": ("detection",),
    "SEGMENTATION": ("segmentation",),
    "TEXT_DETECTION": ("text-detection", "text-end2end"),
    "TEXT_END2END": ("text-end2end", "text-detection"),
    "TEXT_RECOGNITION": ("text-recognition",),
}


def features(model_type: str | None = None) -> dict:
    """The parse spec of :func:`tf.io.parse_single_example` for a model type's examples (all
    model types' keys when None); lists are VarLenFeature (sparse)."""
    import tensorflow as tf

    var = tf.io.VarLenFeature
    one = tf.io.FixedLenFeature
    spec: dict[str, Any] = {"image/key": one([], tf.string), "image/filename": one([], tf.string)}
    image = {
        "image/encoded": one([], tf.string),
        "image/format": one([], tf.string),
        "image/height": one([], tf.int64),
        "image/width": one([], tf.int64),
    }
    classes = {"image/class/label": var(tf.int64), "image/class/text": var(tf.string)}
    boxes = {f"image/object/bbox/{k}": var(tf.float32) for k in ("xmin", "ymin", "xmax", "ymax")}
    boxes.update(
        {
            "image/object/class/label": var(tf.int64),
            "image/object/class/text": var(tf.string),
            "image/object/ignore": var(tf.int64),
            "image/object/polygon": var(tf.float32),
            "image/object/polygon/size": var(tf.int64),
        }
    )
    text_lines = {
        "image/object/direction": var(tf.int64),
        "image/orientation": one([], tf.int64, default_value=0),
    }
    by_type = {
        "CLASSIFICATION": {**image, **classes},
        "DETECTION": {**image, **boxes},
        "INSTANCE_SEGMENTATION": {**image, **boxes, "image/object/mask": var(tf.string)},
        "SEGMENTATION": {
            **image,
            "image/segmentation/class/encoded": one([], tf.string),
            "image/segmentation/class/format": one([], tf.string),
        },
        "TEXT_DETECTION": {**image, **boxes, **text_lines},
        "TEXT_END2END": {
            **image,
            **boxes,
            **text_lines,
            "image/object/text": var(tf.string),
            "image/object/text/label": var(tf.int64),
            "image/object/text/length": var(tf.int64),
        },
        "TEXT_RECOGNITION": {**image, "image/text": one([], tf.string), "image/text/label": var(tf.int64)},
        "VIDEO_CLASSIFICATION": {
            **classes,
            "video/frames": var(tf.string),
            "video/frame_count": one([], tf.int64),
            "video/fps": one([], tf.float32),
        },
    }
    if model_type is not None:
        return {**spec, **by_type[model_type]}
    for part in by_type.values():  # every key, each one a list (not every type has it)
        spec.update({k: var(v.dtype) for k, v in part.items()})
    return spec


class TextTools:
    """The character replacement map and the character dictionary of the text model types."""

    def __init__(self, replace: list[tuple[str, str]] | None, chars: list[str] | None):
        self.replace = replace or []
        self.ids = {c: k for k, c in enumerate(chars)} if chars is not None else None

    def text(self, value: str) -> str:
        for old, new in self.replace:
            value = value.replace(old, new)
        return value

    def labels(self, value: str, where: str) -> list[int]:
        assert self.ids is not None
        missing = [c for c in value if c not in self.ids]
        if missing:
            raise BadInput(
                f"{where}: character {missing[0]!r} is not in the character dictionary; "
                "add it to default_char_dict_path",
                "options.default_char_dict_path",
            )
        return [self.ids[c] for c in value]


def _encode(image: Image.Image, fmt: str) -> bytes:
    out = io.BytesIO()
    image.convert("RGB" if fmt == "jpeg" or image.mode not in ("L", "RGB", "RGBA") else image.mode).save(
        out, format=fmt.upper()
    )
    return out.getvalue()


def load_image(data: bytes, where: str) -> Image.Image:
    try:
        image = Image.open(io.BytesIO(data))
        image.load()
    except (OSError, ValueError) as exc:
        raise BadInput(f"{where}: the image cannot be read ({exc})", "label_file") from None
    return image


def shrink(image: Image.Image, max_size: int | None) -> Image.Image:
    if max_size and max(image.size) > max_size:
        image = image.copy()
        image.thumbnail((max_size, max_size))
    return image


def example(
    tf,
    opts: ConvertOptions,
    key: str,
    url: str,
    answer: Any,
    media: bytes,
    max_size: int | None,
    classes: ClassMap,
    text: TextTools,
    mask: np.ndarray | None,
    converter=None,
):
    """The example of one item, or None when every label of a classified item is left out."""
    where = f"item {key} ({url})"
    mt = opts.model_type
    kind = shapes.shape_of(answer)
    if mt == "SELF_DEFINED":
        return tf.train.Example(features=tf.train.Features(feature=_own(tf, converter, key, url, answer, media, where)))
    if kind not in ACCEPTS[mt]:
        raise BadInput(
            f"{where}: a {kind or 'malformed'} answer cannot be converted as {mt}; its model_type is one of "
            + ", ".join(t for t, kinds in ACCEPTS.items() if kind in kinds),
            "options.model_type",
        )

    def b(values):
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=values))

    def i(values):
        return tf.train.Feature(int64_list=tf.train.Int64List(value=values))

    def f(values):
        return tf.train.Feature(float_list=tf.train.FloatList(value=values))

    feats = {"image/key": b([key.encode()]), "image/filename": b([url.encode()])}
    if mt in ("CLASSIFICATION", "VIDEO_CLASSIFICATION"):
        names = answer["option"] if isinstance(answer["option"], list) else [answer["option"]]
        if opts.separator:
            names = [part for n in names for part in str(n).split(opts.separator) if part]
        found = [c for c in (classes.resolve(str(n), where) for n in names) if c is not None]
        if not found:
            return None
        feats["image/class/label"] = i([c[0] for c in found])
        feats["image/class/text"] = b([c[1].encode() for c in found])
        if mt == "VIDEO_CLASSIFICATION":
            frames, fps = video_frames(media, opts, where)
            feats["video/frames"] = b(frames)
            feats["video/frame_count"] = i([len(frames)])
            feats["video/fps"] = f([fps])
            return tf.train.Example(features=tf.train.Features(feature=feats))
    source = load_image(media, where)
    width, height = source.size
    image = shrink(source, max_size)
    feats["image/encoded"] = b([_encode(image, opts.image_format)])
    feats["image/format"] = b([opts.image_format.encode()])
    feats["image/height"] = i([image.size[1]])
    feats["image/width"] = i([image.size[0]])
    if mt == "SEGMENTATION":
        assert mask is not None
        ids = Image.fromarray(mask.astype(np.uint8), "L")
        if ids.size != image.size:
            ids = ids.resize(image.size, Image.Resampling.NEAREST)
        out = io.BytesIO()
        ids.save(out, format="PNG")
        feats["image/segmentation/class/encoded"] = b([out.getvalue()])
        feats["image/segmentation/class/format"] = b([b"png"])
    elif mt == "TEXT_RECOGNITION":
        value = text.text(answer["text"])
        feats["image/text"] = b([value.encode()])
        if text.ids is not None:
            feats["image/text/label"] = i(text.labels(value, where))
    elif mt in BOX_TYPES:
        feats.update(_boxes(tf, opts, kind, answer, where, (width, height), image.size, classes, text, b, i, f))
    return tf.train.Example(features=tf.train.Features(feature=feats))


def _boxes(tf, opts, kind, answer, where, size, stored, classes, text, b, i, f) -> dict:
    objects, orientation = shapes.objects_of(kind, answer, where)
    width, height = size
    kept = []
    for k, o in enumerate(objects):
        found = classes.resolve(o["class"], f"{where} object {k + 1}")
        if found is not None:
            kept.append((o, found))
    rel = [[[x / width, y / height] for x, y in o["points"]] for o, _ in kept]
    feats = {
        "image/object/bbox/xmin": f([min(p[0] for p in pts) for pts in rel]),
        "image/object/bbox/ymin": f([min(p[1] for p in pts) for pts in rel]),
        "image/object/bbox/xmax": f([max(p[0] for p in pts) for pts in rel]),
        "image/object/bbox/ymax": f([max(p[1] for p in pts) for pts in rel]),
        "image/object/class/label": i([c[0] for _, c in kept]),
        "image/object/class/text": b([c[1].encode() for _, c in kept]),
        "image/object/ignore": i(
            [int(opts.ignore_class is not None and o["class"] == opts.ignore_class) for o, _ in kept]
        ),
        "image/object/polygon": f([c for pts in rel for p in pts for c in p]),
        "image/object/polygon/size": i([len(pts) for pts in rel]),
    }
    if opts.model_type == "INSTANCE_SEGMENTATION":
        w, h = stored
        pngs = []
        for pts in rel:
            one = masks.rasterize(w, h, [([[x * w, y * h] for x, y in pts], 1)])
            out = io.BytesIO()
            Image.fromarray(one, "L").save(out, format="PNG")
            pngs.append(out.getvalue())
        feats["image/object/mask"] = b(pngs)
    if opts.model_type in ("TEXT_DETECTION", "TEXT_END2END"):
        feats["image/object/direction"] = i([shapes.ORIENTATIONS.index(o["direction"]) for o, _ in kept])
        feats["image/orientation"] = i([shapes.ORIENTATIONS.index(orientation)])
    if opts.model_type == "TEXT_END2END":
        lines = [text.text(o["text"]) for o, _ in kept]
        feats["image/object/text"] = b([t.encode() for t in lines])
        if text.ids is not None:
            labels = [text.labels(t, f"{where} line {k + 1}") for k, t in enumerate(lines)]
            feats["image/object/text/label"] = i([c for line in labels for c in line])
            feats["image/object/text/length"] = i([len(line) for line in labels])
    return feats


def _own(tf, converter, key: str, url: str, answer: Any, media: bytes, where: str) -> dict:
    """SELF_DEFINED: the features a converter of the user's returns, typed by their values."""
    got = converter(key=key, url=url, answer=answer, media=media)
    if not isinstance(got, dict):
        raise BadInput(
            f"{where}: the converter must return a dict of feature name -> values", "options.converter_class"
        )
    feats = {"image/key": [key.encode()], "image/filename": [url.encode()]}
    out = {}
    for name, value in {**feats, **got}.items():
        values = value if isinstance(value, (list, tuple)) else [value]
        values = [v.encode() if isinstance(v, str) else v for v in values]
        if all(isinstance(v, bytes) for v in values):
            out[name] = tf.train.Feature(bytes_list=tf.train.BytesList(value=values))
        elif all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in values):
            out[name] = tf.train.Feature(int64_list=tf.train.Int64List(value=values))
        elif all(isinstance(v, (int, float, np.number)) for v in values):
            out[name] = tf.train.Feature(float_list=tf.train.FloatList(value=values))
        else:
            raise BadInput(
                f"{where}: feature {name!r} must be bytes, text, whole numbers or numbers", "options.converter_class"
            )
    return out


def video_frames(media: bytes, opts: ConvertOptions, where: str) -> tuple[list[bytes], float]:
    """JPEG frames of a video, one every 1/sample_fps seconds, reshape_size square."""
    try:
        import cv2
    except ImportError:
        raise BadInput(
            "VIDEO_CLASSIFICATION decodes videos with OpenCV: pip install 'pai_lab[video]'", "options.model_type"
        ) from None
    fd, path = tempfile.mkstemp(suffix=".video")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(media)
        cap = cv2.VideoCapture(path)
        if not cap.isOpened():
            raise BadInput(f"{where}: the video cannot be decoded", "label_file")
        fps = float(cap.get(cv2.CAP_PROP_FPS) or 25.0)
        frames: list[bytes] = []
        step, due, n = 1.0 / opts.sample_fps, 0.0, 0
        while len(frames) < 10_000:
            ok, frame = cap.read()
            if not ok:
                break
            t = n / fps
            n += 1
            if t + 1e-9 < due:
                continue
            due += step
            frame = cv2.resize(frame, (opts.reshape_size, opts.reshape_size))
            ok, buf = cv2.imencode(".jpg", frame)
            frames.append(buf.tobytes())
        cap.release()
    finally:
        os.remove(path)
    if not frames:
        raise BadInput(f"{where}: the video has no frames", "label_file")
    return frames, fps
