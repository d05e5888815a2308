"""The options of EasyVision's ``convert`` (``convert_param_config``), checked once.

They come as a dict (an export's ``options``) or as the manual's string
``--model_type DETECTION --test_ratio 0.1 ...``, merged by :func:`read`. Every option of the
manual is known: those that change what is written here are honoured, those that mean nothing
on one machine (parallel writers, the cluster, OSS roles) are checked and answered with a note
saying why they are ignored. Unknown options are a 400 naming them.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from typing import Any

from pai_lab.errors import BadInput

MODEL_TYPES = (
    "CLASSIFICATION",
    "DETECTION",
    "SEGMENTATION",
    "INSTANCE_SEGMENTATION",
    "TEXT_END2END",
    "TEXT_RECOGNITION",
    "TEXT_DETECTION",
    "VIDEO_CLASSIFICATION",
    "SELF_DEFINED",
)
BOX_TYPES = ("DETECTION", "INSTANCE_SEGMENTATION", "TEXT_DETECTION", "TEXT_END2END")
TEXT_TYPES = ("TEXT_END2END", "TEXT_RECOGNITION")
VIDEO_OPTIONS = ("decode_type", "sample_fps", "reshape_size", "decode_batch_size", "decode_keep_size")
BUILTIN_CONVERTER = "QinceConverter"
# the command's own parameters beside convert_param_config: checked, meaningless on one machine
COMMAND_NOTES = {
    "buckets": "buckets: paths are read as given (local, s3:// with the server's credentials); buckets is ignored",
    "arn": "arn: there are no RAM roles here; s3:// is read with the server's credentials",
    "ossHost": "ossHost: s3:// endpoints come from the server's storage settings; ossHost is ignored",
    "cluster": "cluster: the conversion runs in one process on this server; cluster is ignored",
}


@dataclass
class ConvertOptions:
    model_type: str
    test_ratio: float = 0.1
    max_image_size: int | None = None
    max_test_image_size: int | None = None
    class_list_file: str | None = None
    class_list: list[str] | None = None
    default_class: str | None = None
    error_class: str | None = None
    ignore_class: str | None = None
    unknown_class: str = "raise"
    separator: str | None = None
    image_format: str = "jpeg"
    read_parallel_num: int = 10
    num_samples_per_tfrecord: int = 256
    char_replace_map_path: str | None = None
    default_char_dict_path: str | None = None
    decode_type: int = 4
    sample_fps: float = 5.0
    reshape_size: int = 224
    seed: int = 0
    converter_path: str | None = None  # SELF_DEFINED: a .py file of the user's, and its class
    converter_class: str | None = None
    notes: list[str] = field(default_factory=list)


def parse_config(text: str) -> dict[str, str]:
    """``--key value --key2 value2`` -> {key: value} (the manual's convert_param_config)."""
    try:
        words = shlex.split(text or "")
    except ValueError as exc:
        raise BadInput(f"convert_param_config: {exc}; write --key value pairs", "convert_param_config") from None
    out: dict[str, str] = {}
    i = 0
    while i < len(words):
        word = words[i]
        if not word.startswith("--") or len(word) < 3:
            raise BadInput(
                f"convert_param_config: {word!r} is not --key; write --key value pairs", "convert_param_config"
            )
        if i + 1 >= len(words) or words[i + 1].startswith("--"):
            raise BadInput(f"convert_param_config: {word} has no value", "convert_param_config")
        out[word[2:]] = words[i + 1]
        i += 2
    return out


def _int(raw: dict, key: str, low: int, high: int) -> int | None:
    if raw.get(key) is None:
        return None
    try:
        value = int(str(raw[key]))
    except ValueError:
        raise BadInput(f"options.{key} {raw[key]!r} must be a whole number", f"options.{key}") from None
    if not low <= value <= high:
        raise BadInput(f"options.{key} {value} must be between {low} and {high}", f"options.{key}")
    return value


def _float(raw: dict, key: str, low: float, high: float) -> float | None:
    if raw.get(key) is None:
        return None
    try:
        value = float(str(raw[key]))
    except ValueError:
        raise BadInput(f"options.{key} {raw[key]!r} must be a number", f"options.{key}") from None
    if not low <= value < high:
        raise BadInput(f"options.{key} {value} must be in [{low}, {high})", f"options.{key}")
    return value


def _text(raw: dict, key: str) -> str | None:
    value = raw.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value or len(value) > 4096:
        raise BadInput(f"options.{key} must be a non-empty string", f"options.{key}")
    return value


KNOWN = {
    "model_type",
    "class_list_file",
    "class_list",
    "test_ratio",
    "max_image_size",
    "max_test_image_size",
    "default_class",
    "error_class",
    "ignore_class",
    "unknown_class",
    "converter_class",
    "seperator",
    "separator",
    "image_format",
    "read_parallel_num",
    "write_parallel_num",
    "num_samples_per_tfrecord",
    "user_defined_converter_path",
    "user_defined_generator_path",
    "generator_class",
    "char_replace_map_path",
    "default_char_dict_path",
    *VIDEO_OPTIONS,
    "seed",
    "shape",
}


def read(raw: dict[str, Any], default_type: str | None = None, *, own_code: bool = False) -> ConvertOptions:
    """Check ``raw`` (convert_param_config keys, values as given) into :class:`ConvertOptions`.
    ``own_code``: the conversion runs in the user's own process, where SELF_DEFINED may run their code."""
    unknown = sorted(set(raw) - KNOWN)
    if unknown:
        raise BadInput(
            f"options.{unknown[0]}: no such convert option; options are {', '.join(sorted(KNOWN))}",
            f"options.{unknown[0]}",
        )
    given = raw.get("model_type") or default_type
    mt = str(given or "").upper()
    if mt not in MODEL_TYPES:
        raise BadInput(
            f"options.model_type {given or '(none given)'!r}: use one of {', '.join(MODEL_TYPES)}", "options.model_type"
        )
    opts = ConvertOptions(model_type=mt)
    notes = opts.notes
    code = [k for k in ("user_defined_converter_path", "user_defined_generator_path", "generator_class") if raw.get(k)]
    if (mt == "SELF_DEFINED" or code) and not own_code:
        raise BadInput(
            f"options.{'model_type SELF_DEFINED' if mt == 'SELF_DEFINED' else code[0]} runs code of your own, which "
            "this server does not execute; run the conversion in your notebook instead: "
            "pai_lab.client.easyvision.convert_here(label_file, output_tfrecord, config, converter=...)",
            "options.model_type" if mt == "SELF_DEFINED" else f"options.{code[0]}",
        )
    converter = _text(raw, "converter_class")
    if mt == "SELF_DEFINED":
        opts.converter_path = _text(raw, "user_defined_converter_path")
        opts.converter_class = converter
        if raw.get("user_defined_generator_path") or raw.get("generator_class"):
            notes.append("user_defined_generator_path, generator_class: the label_file's rows are the samples here")
    elif converter is not None and converter != BUILTIN_CONVERTER:
        raise BadInput(
            f"options.converter_class {converter!r}: only {BUILTIN_CONVERTER} is built in (others are SELF_DEFINED)",
            "options.converter_class",
        )
    elif code:
        raise BadInput(f"options.{code[0]} needs model_type SELF_DEFINED", f"options.{code[0]}")
    ratio = _float(raw, "test_ratio", 0.0, 1.0)
    opts.test_ratio = 0.1 if ratio is None else ratio
    opts.max_image_size = _int(raw, "max_image_size", 16, 20_000)
    opts.max_test_image_size = _int(raw, "max_test_image_size", 16, 20_000) or opts.max_image_size
    opts.num_samples_per_tfrecord = _int(raw, "num_samples_per_tfrecord", 1, 1_000_000) or 256
    opts.read_parallel_num = _int(raw, "read_parallel_num", 1, 64) or 10
    opts.seed = _int(raw, "seed", 0, 2**31) or 0
    if _int(raw, "write_parallel_num", 1, 64) is not None:
        notes.append("write_parallel_num: shards are written one after another on this server; it is ignored")
    fmt = str(raw.get("image_format", "jpg")).lower()
    if fmt not in ("jpg", "jpeg", "png"):
        raise BadInput(f"options.image_format {fmt!r}: use jpg or png", "options.image_format")
    opts.image_format = "png" if fmt == "png" else "jpeg"
    opts.class_list_file = _text(raw, "class_list_file")
    listed = raw.get("class_list")
    if listed is not None:
        names = listed.split(",") if isinstance(listed, str) else listed
        if not isinstance(names, list) or not names or not all(isinstance(n, str) and n.strip() for n in names):
            raise BadInput("options.class_list must be class names (a list, or comma-separated)", "options.class_list")
        if len(names) > 10_000:
            raise BadInput("options.class_list holds at most 10,000 classes", "options.class_list")
        opts.class_list = [n.strip() for n in names]
    if opts.class_list is not None and opts.class_list_file is not None:
        raise BadInput("give options.class_list or options.class_list_file, not both", "options.class_list")
    opts.default_class = _text(raw, "default_class")
    opts.error_class = _text(raw, "error_class")
    opts.ignore_class = _text(raw, "ignore_class")
    if opts.ignore_class and mt not in BOX_TYPES:
        notes.append(f"ignore_class: it marks boxes to ignore in training, and {mt} has no boxes; it is ignored")
        opts.ignore_class = None
    unknown_class = str(raw.get("unknown_class") or ("default" if opts.default_class else "raise"))
    if unknown_class not in ("raise", "ignore", "default"):
        raise BadInput(
            f"options.unknown_class {unknown_class!r}: use raise, ignore or default", "options.unknown_class"
        )
    if unknown_class == "default" and not opts.default_class:
        raise BadInput(
            "options.unknown_class default needs options.default_class, the class to map to", "options.default_class"
        )
    opts.unknown_class = unknown_class
    opts.separator = _text(raw, "seperator") or _text(raw, "separator")
    for key in ("char_replace_map_path", "default_char_dict_path"):
        value = _text(raw, key)
        if value is not None and mt not in TEXT_TYPES:
            notes.append(f"{key}: it takes effect for TEXT_END2END and TEXT_RECOGNITION only; it is ignored for {mt}")
            value = None
        setattr(opts, key, value)
    video = [k for k in VIDEO_OPTIONS if raw.get(k) is not None]
    if video and mt != "VIDEO_CLASSIFICATION":
        notes.append(f"{', '.join(video)}: they take effect for VIDEO_CLASSIFICATION only; ignored for {mt}")
    elif mt == "VIDEO_CLASSIFICATION":
        opts.decode_type = _int(raw, "decode_type", 1, 4) or 4
        if opts.decode_type != 4:
            notes.append(
                f"decode_type {opts.decode_type}: frames are decoded whole here (4) and then sampled at sample_fps"
            )
        opts.sample_fps = _float(raw, "sample_fps", 0.01, 1000.0) or 5.0
        opts.reshape_size = _int(raw, "reshape_size", 8, 4096) or 224
        for key in ("decode_batch_size", "decode_keep_size"):
            if _int(raw, key, 0, 10_000) is not None:
                notes.append(f"{key}: frames are decoded in one pass per video here; it is ignored")
    return opts


class ClassMap:
    """Class names to ids: the class list (``name`` or ``name:mapped`` lines, ids in order of the
    mapped names), or the names as they come when there is none."""

    def __init__(self, opts: ConvertOptions, entries: list[str] | None, learnt: list[str] | None = None):
        self.opts = opts
        self.fixed = entries is not None
        self.mapping: dict[str, str] = {}
        self.names: list[str] = []
        for line in entries if entries is not None else (learnt or []):
            name, _, mapped = line.partition(":")
            name, mapped = name.strip(), (mapped.strip() or name.strip())
            if not name:
                continue
            self.mapping[name] = mapped
            if mapped not in self.names:
                self.names.append(mapped)
        if opts.default_class and opts.default_class not in self.names:
            self.names.append(opts.default_class)

    def resolve(self, name: str, where: str) -> tuple[int, str] | None:
        """(id, name) of a class; None when the object is left out (error_class, ignored unknowns)."""
        opts = self.opts
        if opts.error_class is not None and name == opts.error_class:
            return None
        target = self.mapping.get(name, name if not self.fixed and name else None)
        if target is None:
            if opts.unknown_class == "ignore":
                return None
            if opts.unknown_class == "default" and opts.default_class:
                target = opts.default_class
            elif not name:
                return -1, ""
            else:
                raise BadInput(
                    f"{where}: class {name!r} is not in the class list; add it to class_list_file, or give "
                    "default_class (unknown classes map to it) or unknown_class=ignore",
                    "options.class_list_file" if opts.class_list_file else "options.class_list",
                )
        if target not in self.names:
            self.names.append(target)
        return self.names.index(target), target
