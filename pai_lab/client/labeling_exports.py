"""Exporting a labeling task: single-file formats stream to this machine, folder formats and anything bound
for a bucket or a dataset are written by the server.

Mixed into :class:`pai_lab.client.labeling.Task`, whose ``_post`` plumbing and workspace client it uses.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

from pai_lab.labeling import schemas as sc

STREAMED = {"itag", "easyvision", "label-studio", "coco", "conll"}


class TaskExports:
    """Export a task's results (a :class:`~pai_lab.client.labeling.Task` does this)."""

    # ------------------------------------------------------------ export

    def export(
        self,
        format: str = "itag",
        to: str | os.PathLike | None = None,
        *,
        register_as: str | None = None,
        options: dict | None = None,
        storage_options: dict | None = None,
        server_side: bool = False,
        progress: bool = True,
        overwrite: bool = False,
    ):
        """Export the task. Single-file formats stream to ``to`` from here (or return the text
        when ``to`` is None); folder formats (yolo, tfrecord), s3:// URIs, ``register_as`` and
        ``server_side=True`` are written by the server, which replaces an existing ``to`` only with
        ``overwrite=True``. ``progress`` shows a bar (bytes received for streamed exports; off with
        ``progress=False``)."""
        from tqdm.auto import tqdm

        def bar(**kw):
            return tqdm(desc=f"export {self.name} ({format})", disable=not progress, **kw)

        if to is None:
            if format not in STREAMED:
                raise ValueError(f"{format} exports are folders: give to=<path>")
            resp = self._lab._ws.http.get(
                f"/workspaces/{self._lab._ws.name}{self._p('/export')}", params={"format": format}, stream=True
            )
            chunks = []
            with bar(unit="B", unit_scale=True) as shown:
                for chunk in resp.iter_content(1 << 16):
                    chunks.append(chunk)
                    shown.update(len(chunk))
            return b"".join(chunks).decode("utf-8")
        to = os.fspath(to)
        if format in STREAMED and not (server_side or register_as or "://" in to or options or storage_options):
            resp = self._lab._ws.http.get(
                f"/workspaces/{self._lab._ws.name}{self._p('/export')}",
                params={"format": format},
                stream=True,
                timeout=3600,
            )
            path = Path(to)
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(path.name + f".tmp-{uuid.uuid4().hex[:8]}")
            try:
                with open(tmp, "wb") as f, bar(unit="B", unit_scale=True) as shown:
                    for chunk in resp.iter_content(1 << 16):
                        f.write(chunk)
                        shown.update(len(chunk))
                os.replace(tmp, path)
            finally:
                tmp.unlink(missing_ok=True)
            return sc.ExportResult(format=format, to=to, items=self.info.total, files=[to])
        body = {
            "format": format,
            "to": to if "://" in to else str(Path(to).resolve()),
            "register_as": register_as,
            "options": options or {},
            "storage_options": storage_options or {},
            "overwrite": overwrite,
        }
        with bar(total=self.info.total, unit="item") as shown:  # written by the server in one call
            result = sc.ExportResult.model_validate(self._post("/export", body, timeout=3600))
            shown.update(result.items)
        return result
