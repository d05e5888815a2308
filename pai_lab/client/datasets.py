"""``ws.datasets``: register, list and read datasets from a notebook or a script.

>>> ds = ws.datasets.register("pets", "data/pets", scan=True)
>>> ds.versions, ds.diff(1, 2), ds.check()
>>> ds.to_pandas(); ds.to_tf_dataset(image_size=(64, 64), batch_size=32); ds.preview()
"""

from __future__ import annotations

import html
import io
import json
import os
import sys
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from pai_lab.datasets.readers import frame_to_lines, items_frame
from pai_lab.datasets.schemas import (
    CheckReport,
    CodeSource,
    DatasetDiff,
    DatasetItem,
    DatasetVersion,
    ItemPage,
    Sample,
    ScanProgress,
)
from pai_lab.datasets.schemas import Dataset as DatasetInfo
from pai_lab.datasets.sources import split_local_uri

LONG_CALL = 3600  # seconds: a scan of millions of files may take a while
LIST_COLUMNS = [
    "name",
    "data_type",
    "item_count",
    "total_bytes",
    "latest_version",
    "source_uri",
    "visibility",
    "created_by",
    "created_at",
]

if TYPE_CHECKING:  # pandas loads on first use: the CLI starts faster without it
    import pandas as pd


def _progress_bar(description: str, file=None):
    if file is not None:
        from tqdm import tqdm
    else:
        from tqdm.auto import tqdm
    return tqdm(desc=description, unit=" items", delay=0.5, file=file, leave=False)


class _ScanWatcher:
    """Polls a scan's progress while the request that runs it is in flight, and shows a bar."""

    def __init__(self, ws, name: str, file=None, interval: float = 0.5):
        self.ws, self.name, self.file, self.interval = ws, name, file, interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        bar = _progress_bar(f"scanning {self.name}", self.file)
        try:
            while not self._stop.wait(self.interval):
                try:
                    state = ScanProgress.model_validate(self.ws._get(f"/datasets/{self.name}/progress"))
                except Exception:  # noqa: BLE001 - a failed poll is retried
                    continue
                if state.running:
                    bar.update(state.items - bar.n)
        finally:
            bar.close()

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(5)


class Dataset:
    """One registered dataset: versions, diff, drift check, items and readers."""

    def __init__(self, datasets: Datasets, info: DatasetInfo):
        self._datasets = datasets
        self._ws = datasets._ws
        self.info = info
        self.storage_options: dict[str, Any] = {}  # your own credentials, used to read the data directly

    # ---------------------------------------------------------------- metadata

    @property
    def name(self) -> str:
        return self.info.name

    @property
    def id(self) -> str:
        return self.info.id

    @property
    def data_type(self) -> str:
        return self.info.data_type

    @property
    def latest_version(self) -> int | None:
        return self.info.latest_version

    def _path(self, suffix: str = "") -> str:
        return f"/datasets/{self.info.name}{suffix}"

    def refresh(self) -> Dataset:
        self.info = DatasetInfo.model_validate(self._ws._get(self._path()))
        return self

    def update(
        self,
        *,
        description: str | None = None,
        tags: dict | None = None,
        visibility: str | None = None,
        data_type: str | None = None,
    ) -> Dataset:
        body = {
            k: v
            for k, v in dict(description=description, tags=tags, visibility=visibility, data_type=data_type).items()
            if v is not None
        }
        self.info = DatasetInfo.model_validate(self._ws._patch(self._path(), body))
        return self

    @property
    def versions(self) -> list[DatasetVersion]:
        return [DatasetVersion.model_validate(v) for v in self._ws._get(self._path("/versions"))]

    def version(self, number: int | None = None) -> DatasetVersion:
        number = number if number is not None else self.refresh().latest_version
        return DatasetVersion.model_validate(self._ws._get(self._path(f"/versions/{number}")))

    def new_version(
        self, description: str = "", *, hash: bool = False, items: Any = None, progress: bool | Any = True
    ) -> DatasetVersion:
        """Re-scan the source into a new immutable version (or register ``items`` as one)."""
        body: dict[str, Any] = {"description": description, "hash": hash}
        if items is not None:
            body["items"] = _lines(items)

        def call():
            return self._ws._post(self._path("/versions"), body, timeout=LONG_CALL)

        data = self._datasets._watched(self.name, call, progress)
        self.refresh()
        return DatasetVersion.model_validate(data)

    def diff(self, from_version: int, to_version: int | None = None, *, limit: int = 1000) -> DatasetDiff:
        params = {"from": from_version, "limit": limit}
        if to_version is not None:
            params["to"] = to_version
        return DatasetDiff.model_validate(self._ws._get(self._path("/diff"), params=params))

    def check(self, version: int | None = None) -> CheckReport:
        """Do the version's items still exist unchanged? Drift is reported, not raised."""
        params = {"version": version} if version is not None else None
        return CheckReport.model_validate(self._ws._get(self._path("/check"), params=params, timeout=LONG_CALL))

    # ---------------------------------------------------------------- items

    def page(self, offset: int = 0, limit: int = 50, version: int | None = None) -> ItemPage:
        params: dict[str, Any] = {"offset": offset, "limit": limit}
        if version is not None:
            params["version"] = version
        return ItemPage.model_validate(self._ws._get(self._path("/items"), params=params))

    def items(self, version: int | None = None, *, page_size: int = 5000) -> Iterator[DatasetItem]:
        """Every item of a version (latest by default), fetched a page at a time."""
        offset = 0
        while True:
            page = self.page(offset, page_size, version)
            yield from page.items
            offset += len(page.items)
            if not page.items or offset >= page.total:
                return

    def manifest(self, version: int | None = None) -> Iterator[dict]:
        """The version's iTAG manifest lines, streamed."""
        params = {"version": version} if version is not None else None
        resp = self._ws.http.get(self._ws._path(self._path("/manifest")), params=params, stream=True, timeout=LONG_CALL)
        with resp:
            for raw in resp.iter_lines():
                if raw:
                    yield json.loads(raw)

    def _item(self, item: DatasetItem | str | int, version: int | None) -> DatasetItem:
        if isinstance(item, DatasetItem):
            return item
        if isinstance(item, int):
            page = self.page(item, 1, version)
            if not page.items:
                raise IndexError(f"{self.name} has {page.total} items; no item {item}")
            return page.items[0]
        for candidate in self.items(version):
            if candidate.key == item:
                return candidate
        raise KeyError(f"{self.name} has no item {item!r}")

    def read_bytes(self, item: DatasetItem | str | int, version: int | None = None) -> bytes:
        with self.open(item, "rb", version=version) as fh:
            return fh.read()

    def open(self, item: DatasetItem | str | int, mode: str = "rb", *, version: int | None = None):
        """Open an item: local files and objects directly (fsspec), else through the server.
        A text item (its data.source is the text) opens as that text."""
        item = self._item(item, version)
        source = item.source or ""
        text = "b" not in mode
        local = split_local_uri(source)
        is_file = source.startswith(("s3://", "http://", "https://", "file://")) or (
            local is not None and os.path.isabs(local) and "\n" not in local
        )
        if not is_file:
            return io.StringIO(source) if text else io.BytesIO(source.encode())
        if local is not None and os.path.exists(local):
            return open(local, mode)
        if source.startswith("s3://") and self._usable_options():
            import fsspec

            from pai_lab.datasets.sources import s3_options

            return fsspec.open(source, mode, **s3_options({**self.info.storage_options, **self.storage_options})).open()
        params = {"index": item.index}
        if version is not None:
            params["version"] = version
        resp = self._ws.http.get(self._ws._path(self._path("/content")), params=params, stream=True, timeout=LONG_CALL)
        data = resp.content
        return io.StringIO(data.decode()) if text else io.BytesIO(data)

    def _usable_options(self) -> bool:
        if self.storage_options:
            return True
        return "***" not in json.dumps(self.info.storage_options)

    def _remote_reader(self):
        """read_bytes(source) for tf.data: direct when possible, else through the server."""
        index: dict[str, int] = {}

        def read(source: str) -> bytes:
            if source.startswith("s3://") and self._usable_options():
                import fsspec

                from pai_lab.datasets.sources import s3_options

                with fsspec.open(
                    source, "rb", **s3_options({**self.info.storage_options, **self.storage_options})
                ) as fh:
                    return fh.read()
            if not index:
                index.update({i.source: i.index for i in self.items() if i.source})
            resp = self._ws.http.get(
                self._ws._path(self._path("/content")), params={"index": index[source]}, stream=True, timeout=LONG_CALL
            )
            return resp.content

        return read

    def to_pandas(self, version: int | None = None) -> pd.DataFrame:
        """The items as a table (key, source, size, stamp, label, data fields); for a tabular
        dataset of one CSV/Parquet file, that file's rows."""
        if self.info.data_type == "tabular" and self.info.item_count == 1:
            import pandas as pd

            item = next(self.items(version))
            with self.open(item, "rb", version=version) as fh:
                if (item.source or "").endswith(".parquet"):
                    return pd.read_parquet(fh)
                sep = "\t" if (item.source or "").endswith(".tsv") else ","
                return pd.read_csv(fh, sep=sep)
        return items_frame(self.items(version))

    def to_tf_dataset(self, version: int | None = None, **kwargs):
        """A tf.data pipeline over the items (see :func:`pai_lab.datasets.readers.to_tf_dataset`):
        decoded images or texts, with labels from a labeling export or class folders, sharded by
        TF_CONFIG for multi-worker training."""
        from pai_lab.datasets.readers import to_tf_dataset

        items = list(self.items(version))
        kwargs.setdefault("data_type", "text" if self.info.data_type == "text" else "image")
        kwargs.setdefault("read_bytes", self._remote_reader())
        return to_tf_dataset([i.line for i in items], keys=[i.key for i in items], **kwargs)

    def preview(self, version: int | None = None, page_size: int = 24):
        """A paged grid of thumbnails (images) or rows (text, tables), with counts and version."""
        from pai_lab.widgets.dataset_preview import DatasetPreview

        return DatasetPreview(self, version=version, page_size=page_size)

    def thumbnail(self, index: int, version: int | None = None, size: int = 128) -> bytes:
        params: dict[str, Any] = {"index": index, "size": size}
        if version is not None:
            params["version"] = version
        resp = self._ws.http.get(self._ws._path(self._path("/thumbnail")), params=params, stream=True)
        return resp.content

    def delete(self) -> None:
        self._datasets.rm(self.name)

    def lineage(self, version: int | None = None):
        """Which pipeline runs, steps and inputs made this dataset's versions (or one of them)."""
        from pai_lab.client.lineage import fetch

        return fetch(self._ws, "dataset", self.name, version)

    def _repr_html_(self) -> str:
        info = self.info
        # items registered from manifest lines carry no size: 0 bytes over items means "not recorded"
        size = _human(info.total_bytes) if info.total_bytes or not info.item_count else "not recorded"
        rows = "".join(
            f"<tr><th style='text-align:left'>{k}</th><td>{html.escape(str(v))}</td></tr>"
            for k, v in (
                ("name", info.name),
                ("type", info.data_type),
                ("items", f"{info.item_count:,}"),
                ("size", size),
                ("latest version", info.latest_version),
                ("source", info.source_uri),
                ("visibility", info.visibility),
                ("created by", info.created_by),
            )
        )
        return f"<table>{rows}</table>"

    def __repr__(self) -> str:
        return (
            f"<dataset {self.info.name!r} ({self.info.data_type}, {self.info.item_count} items, "
            f"v{self.info.latest_version})>"
        )


def _human(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


def _lines(items: Any) -> list:
    pd = sys.modules.get("pandas")  # a DataFrame can only come from a loaded pandas
    if pd is None:
        return list(items)
    if isinstance(items, pd.DataFrame):
        return frame_to_lines(items)
    if isinstance(items, pd.Series):
        return [{"data": {"source": v.item() if hasattr(v, "item") else v}} for v in items.tolist()]
    return list(items)


class Datasets:
    """The datasets of one workspace."""

    def __init__(self, ws):
        self._ws = ws

    def _watched(self, name: str, call, progress):
        if not progress:
            return call()
        with _ScanWatcher(self._ws, name, file=None if progress is True else progress):
            return call()

    def list(self, data_type: str | None = None) -> list[DatasetInfo]:
        params = {"data_type": data_type} if data_type else None
        return [DatasetInfo.model_validate(d) for d in self._ws._get("/datasets", params=params)]

    def get(self, name: str) -> Dataset:
        return Dataset(self, DatasetInfo.model_validate(self._ws._get(f"/datasets/{name}")))

    def register(
        self,
        name: str,
        source: str | None = None,
        *,
        data_type: str | None = None,
        scan: bool = False,
        glob: str | None = None,
        description: str = "",
        tags: dict | None = None,
        visibility: str = "workspace",
        storage_options: dict | None = None,
        items: Any = None,
        mount_path: str | None = None,
        hash: bool = False,
        progress: bool | Any = True,
    ) -> Dataset:
        """Register ``source`` (folder, file, s3:// or oss:// prefix, .manifest, sample://NAME) or
        ``items`` (manifest lines, texts, a DataFrame) as dataset ``name``."""
        body: dict[str, Any] = {
            "name": name,
            "source": source,
            "data_type": data_type,
            "scan": scan,
            "glob": glob,
            "description": description,
            "tags": tags or {},
            "visibility": visibility,
            "storage_options": storage_options or {},
            "mount_path": mount_path,
            "hash": hash,
        }
        if items is not None:
            body["items"] = _lines(items)
        body = {k: v for k, v in body.items() if v is not None}

        def call():
            return self._ws._post("/datasets", body, timeout=LONG_CALL)

        info = DatasetInfo.model_validate(self._watched(name, call, progress if scan else False))
        ds = Dataset(self, info)
        if storage_options:
            ds.storage_options = dict(storage_options)
        return ds

    def from_pandas(self, name: str, frame: pd.DataFrame, source: str | None = None, **kwargs) -> Dataset:
        """Rows as items: ``source`` names the column that becomes data.source; others go along in data."""
        return self.register(name, items=frame_to_lines(frame, source), **kwargs)

    def samples(self) -> list[Sample]:
        return [Sample.model_validate(s) for s in self._ws.http.get("/dataset-samples")]

    def sample(self, sample: str, name: str | None = None) -> Dataset:
        """Register one of the bundled sample datasets (digits, reviews, shapes) in this workspace."""
        return self.register(name or sample, f"sample://{sample}", progress=False)

    def rm(self, name: str) -> None:
        self._ws._delete(f"/datasets/{name}")

    delete = rm

    def to_pandas(self) -> pd.DataFrame:
        from pai_lab.client import table

        return table(self.list(), LIST_COLUMNS)

    # DLC code sources live with the data configuration
    def code_sources(self) -> list[CodeSource]:
        return [CodeSource.model_validate(c) for c in self._ws._get("/code_sources")]

    def __iter__(self):
        return (Dataset(self, info) for info in self.list())

    def __len__(self) -> int:
        return len(self.list())

    def __getitem__(self, name: str) -> Dataset:
        return self.get(name)

    def __contains__(self, name: str) -> bool:
        return any(d.name == name for d in self.list())

    def _repr_html_(self) -> str:
        return self.to_pandas().to_html(index=False)

    def __repr__(self) -> str:
        return f"<datasets of {self._ws.name}: " + ", ".join(d.name for d in self.list()) + ">"
