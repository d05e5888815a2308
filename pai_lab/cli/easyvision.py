"""`pai label convert`: EasyVision's convert to TFRecord, as the manual types it
(``-name easy_vision_ext -Dcmd=convert -Dlabel_file=... -Dconvert_param_config='...' -Doutput_tfrecord=...``),
from an annotation CSV or, given a TASK, through the task's tfrecord export."""

from __future__ import annotations

from pai_lab.cli.base import Result, UsageError, record_result


def _ws(ctx, args):
    return ctx.workspace(getattr(args, "workspace", None))


CONVERT_PARAMS = {
    "cmd",
    "label_file",
    "convert_param_config",
    "output_tfrecord",
    "buckets",
    "arn",
    "ossHost",
    "cluster",
}


def convert(ctx, args) -> Result:
    from pai_lab.client.easyvision import convert as convert_file
    from pai_lab.labeling.formats.convert_options import COMMAND_NOTES, parse_config

    if args.algorithm != "easy_vision_ext":
        raise UsageError(f"pai label convert: -name {args.algorithm!r}; the converter is easy_vision_ext")
    params = {}
    for item in args.params:
        key, sep, value = item.partition("=")
        if not sep or key not in CONVERT_PARAMS:
            raise UsageError(f"-D{item}: write -DKEY=VALUE with KEY one of {', '.join(sorted(CONVERT_PARAMS))}")
        params[key] = value.strip().strip("'\"") if key != "convert_param_config" else value
    if params.pop("cmd", "convert") != "convert":
        raise UsageError("-Dcmd: the only command is convert")
    out = params.pop("output_tfrecord", None)
    if not out:
        raise UsageError(
            "pai label convert: give -Doutput_tfrecord=PREFIX (shards are PREFIX_train_00000.tfrecord ...)"
        )
    config = params.pop("convert_param_config", "")
    ws = None if args.here else _ws(ctx, args)
    if args.task:
        if ws is None:
            raise UsageError("pai label convert: --here converts a -Dlabel_file; a TASK converts on its server")
        if "label_file" in params:
            raise UsageError("pai label convert: give a TASK or -Dlabel_file, not both")
        task = ws.labeling.get(args.task)
        options = dict(parse_config(config))
        ctx.say(f"[Info] Converting {task.info.total} items of [{task.name}] to {out}")
        result = task.export("tfrecord", out, options=options, overwrite=args.overwrite, progress=False)
        result.notes = [COMMAND_NOTES[k] for k in params if k in COMMAND_NOTES] + result.notes
    else:
        label_file = params.pop("label_file", None)
        if not label_file:
            raise UsageError("pai label convert: give -Dlabel_file=CSV (an EasyVision annotation file) or a TASK")
        ctx.say(f"[Info] Converting {label_file} to {out}")
        if args.here:
            from pai_lab.client.easyvision import convert_here

            result = convert_here(label_file, out, config, overwrite=args.overwrite)
            result.notes = [COMMAND_NOTES[k] for k in params if k in COMMAND_NOTES] + result.notes
        else:
            result = convert_file(ws, label_file, out, config, overwrite=args.overwrite, **params)
    for note in result.notes:
        ctx.say(f"[Warn] {note}")
    return record_result(result, ["format", "to", "items", "files"])
