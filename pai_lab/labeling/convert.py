"""EasyVision ``convert``: an annotation CSV (``label_file``) to TFRecord shards.

The same conversion a task's ``tfrecord`` export runs (:mod:`pai_lab.labeling.formats.tfrecord`),
fed from a CSV instead of a task: ``label_file`` and ``output_tfrecord`` are local paths or
``s3://`` URIs, image and mask URLs in the CSV that are not absolute are taken from the CSV's
folder, and ``convert_param_config`` is the manual's ``--key value`` string (or ``options``).
Classes come from ``class_list_file`` / ``class_list``, else in order of first use.
"""

from __future__ import annotations

import glob
import posixpath
from collections.abc import Callable, Iterator

import fsspec

from pai_lab.errors import BadInput, Conflict
from pai_lab.labeling import schemas as sc
from pai_lab.labeling.formats import convert_options as co
from pai_lab.labeling.formats import easyvision as ev
from pai_lab.labeling.formats import easyvision_shapes as shapes
from pai_lab.labeling.formats import tfrecord
from pai_lab.security.paths import scheme_of
from pai_lab.workspaces import authorize

MAX_LABEL_FILE = 1 << 30


def _beside(label_file: str, url: str) -> str:
    """A CSV's url as a location: absolute ones as they are, relative ones from the CSV's folder."""
    return ev.beside(posixpath.dirname(label_file), url)


def _samples(label_file: str, text: str) -> Iterator[ev.Sample]:
    for _, key, raw, answer in ev.read_rows(text):
        if isinstance(answer, dict) and isinstance(answer.get("ossUrl"), str):
            answer = {**answer, "ossUrl": _beside(label_file, answer["ossUrl"])}
        yield ev.Sample(key, _beside(label_file, raw["url"]), answer)


def _names_in(text: str) -> list[str]:
    """Class names in order of first use (the class list when none is given)."""
    seen: dict[str, None] = {}
    for line, _, _, answer in ev.read_rows(text):
        kind = shapes.shape_of(answer)
        if kind in ("classification", "multi-label"):
            values = answer["option"] if isinstance(answer["option"], list) else [answer["option"]]
            seen.update(dict.fromkeys(str(v) for v in values))
        elif kind in ("detection", "text-detection", "text-end2end"):
            objects, _ = shapes.objects_of(kind, answer, f"line {line}")
            seen.update(dict.fromkeys(o["class"] for o in objects if o["class"]))
    return list(seen)


def load_converter(opts: co.ConvertOptions, label_file: str):
    """SELF_DEFINED: an instance of ``converter_class`` from the local file ``user_defined_converter_path``."""
    import importlib.util

    if not opts.converter_path or not opts.converter_class:
        raise BadInput(
            "options.model_type SELF_DEFINED needs user_defined_converter_path (a .py file) and converter_class, "
            "or a converter passed in",
            "options.user_defined_converter_path",
        )
    path = _beside(label_file, opts.converter_path)
    if scheme_of(path):
        raise BadInput(
            f"options.user_defined_converter_path {path!r}: download it and give the local file",
            "options.user_defined_converter_path",
        )
    spec = importlib.util.spec_from_file_location("easyvision_user_converter", path)
    if spec is None or spec.loader is None:
        raise BadInput(
            f"options.user_defined_converter_path {path!r} is not a Python file", "options.user_defined_converter_path"
        )
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except FileNotFoundError:
        raise BadInput(
            f"options.user_defined_converter_path {path!r} does not exist", "options.user_defined_converter_path"
        ) from None
    cls = getattr(module, opts.converter_class, None)
    if cls is None:
        raise BadInput(f"options.converter_class {opts.converter_class!r} is not in {path}", "options.converter_class")
    return cls()


def convert(
    body: sc.ConvertRequest,
    readable: Callable[[str], str] = str,
    writable: Callable[[str], str] = str,
    *,
    own_code: bool = False,
    converter=None,
) -> sc.ExportResult:
    """Convert ``body.label_file``; ``readable``/``writable`` apply the server's policy for paths.
    ``own_code`` (the user's own process only): SELF_DEFINED runs ``converter``, or the one its
    options name, called as ``converter(key=, url=, answer=, media=)`` -> {feature: values}."""
    raw = {**co.parse_config(body.convert_param_config), **body.options}
    opts = co.read(raw, own_code=own_code)
    if opts.model_type == "SELF_DEFINED" and converter is None:
        converter = load_converter(opts, body.label_file)
    notes = [co.COMMAND_NOTES[k] for k in ("buckets", "arn", "ossHost", "cluster") if getattr(body, k)] + opts.notes
    read = tfrecord.read_source(readable, body.storage_options)
    data = read(body.label_file, MAX_LABEL_FILE)  # a larger one is a 400 naming label_file, never read whole
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise BadInput("label_file is not UTF-8 text (an EasyVision CSV)", "label_file") from None
    if opts.model_type == "SEGMENTATION":
        entries = None
        if opts.class_list_file or opts.class_list:
            entries = opts.class_list or tfrecord.read_lines(read, _beside(body.label_file, opts.class_list_file or ""))
        classes = co.ClassMap(opts, entries or [])
    else:
        if opts.class_list_file:
            opts.class_list_file = _beside(body.label_file, opts.class_list_file)
            entries = tfrecord.read_lines(read, opts.class_list_file)
        else:
            entries = opts.class_list
        classes = co.ClassMap(opts, entries, None if entries is not None else _names_in(text))
    for key in ("char_replace_map_path", "default_char_dict_path"):
        if getattr(opts, key):
            setattr(opts, key, _beside(body.label_file, getattr(opts, key)))
    text_tools = tfrecord.text_tools(opts, read)
    to = writable(body.output_tfrecord)
    fs, prefix = fsspec.core.url_to_fs(to, **body.storage_options)
    existing = glob.glob(glob.escape(prefix) + "_*.tfrecord") if not scheme_of(to) else fs.glob(prefix + "_*.tfrecord")
    if existing and not body.overwrite:
        raise Conflict(
            f"output_tfrecord {body.output_tfrecord!r} already has shards; give overwrite=true or another prefix",
            "output_tfrecord",
        )
    files = tfrecord.write(_samples(body.label_file, text), opts, fs, prefix, read, classes, text_tools, converter)
    for old in set(existing) - set(files):  # shards of an earlier conversion that this one did not replace
        fs.rm(old)
    files = [fs.unstrip_protocol(f) if scheme_of(to) else f for f in files]
    items = sum(1 for _ in ev.read_rows(text))
    return sc.ExportResult(format="tfrecord", to=to, items=items, files=files, notes=notes)


def convert_in(store, user: str, ws: str, body: sc.ConvertRequest, containment=None) -> sc.ExportResult:
    """The REST door's conversion: members who manage labeling, paths as the server's policy allows."""
    with store.transaction() as s:
        authorize(s, user, ws, "label.manage")
    if containment is None:
        return convert(body)

    def writable(path: str) -> str:
        target = str(
            containment.writable(path, "output_tfrecord", overwrite=body.overwrite, options=body.storage_options)
        )
        if not scheme_of(target):  # each shard of the prefix is a target too
            for existing in sorted(glob.glob(glob.escape(target) + "_*")):
                containment.writable(existing, "output_tfrecord", overwrite=body.overwrite)
        return target

    return convert(
        body, lambda source: str(containment.readable(source, "label_file", options=body.storage_options)), writable
    )
