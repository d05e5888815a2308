"""EasyVision ``convert`` from the Python client: an annotation CSV to TFRecord shards, written by
the server (``POST /workspaces/{ws}/labeling/convert``). A labeling task converts through its own
export: ``task.export("tfrecord", to, options={"model_type": ...})``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pai_lab.client.labeling_views import html_table
from pai_lab.labeling import schemas as sc


class Conversion(sc.ExportResult):
    """What a conversion wrote, shown in a notebook as its files and the options it ignored."""

    def _repr_html_(self) -> str:
        import html

        shards = [f for f in self.files if f.endswith(".tfrecord")]
        head = (
            f"<div><b>TFRecord</b> {html.escape(self.to)}: {self.items} rows, "
            f"{sum('_train_' in f for f in shards)} train and {sum('_test_' in f for f in shards)} test shards</div>"
        )
        files = html_table([{"file": f} for f in self.files[:20]])
        more = f"<div>... and {len(self.files) - 20} more</div>" if len(self.files) > 20 else ""
        notes = "".join(f"<div>&#9888; {html.escape(n)}</div>" for n in self.notes)
        return head + files + more + notes


def _location(path: str | os.PathLike) -> str:
    text = os.fspath(path)
    return text if "://" in text else str(Path(text).resolve())


def convert(
    ws,
    label_file: str | os.PathLike,
    output_tfrecord: str | os.PathLike,
    convert_param_config: str = "",
    *,
    options: dict[str, Any] | None = None,
    overwrite: bool = False,
    **params: Any,
) -> Conversion:
    """Convert ``label_file`` (local path or s3:// URI) to ``<output_tfrecord>_train_00000.tfrecord``...;
    ``convert_param_config`` is the manual's ``--key value`` string, ``params`` the command's other
    parameters (buckets, arn, ossHost, cluster: taken, and answered in ``notes``)."""
    body = sc.ConvertRequest(
        label_file=_location(label_file),
        output_tfrecord=_location(output_tfrecord),
        convert_param_config=convert_param_config,
        options=options or {},
        overwrite=overwrite,
        **params,
    )
    answer = ws._post("/labeling/convert", body.model_dump(exclude_none=True), timeout=3600)
    return Conversion.model_validate(answer)


def convert_here(
    label_file: str | os.PathLike,
    output_tfrecord: str | os.PathLike,
    convert_param_config: str = "",
    *,
    converter=None,
    options: dict[str, Any] | None = None,
    storage_options: dict[str, Any] | None = None,
    overwrite: bool = False,
) -> Conversion:
    """The same conversion in this Python process (no server): the one way to run ``SELF_DEFINED``,
    whose converter is code of your own. ``converter`` (or ``--user_defined_converter_path file.py
    --converter_class Name``) is called as ``converter(key=, url=, answer=, media=)`` for each row
    and returns {feature name: bytes, text, whole numbers or numbers}."""
    from pai_lab.labeling.convert import convert

    body = sc.ConvertRequest(
        label_file=_location(label_file),
        output_tfrecord=_location(output_tfrecord),
        convert_param_config=convert_param_config,
        options=options or {},
        storage_options=storage_options or {},
        overwrite=overwrite,
    )
    return Conversion.model_validate(convert(body, own_code=True, converter=converter).model_dump())
