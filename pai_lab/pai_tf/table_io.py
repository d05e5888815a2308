"""Tables as PAI-TF reads and writes them, over Parquet and CSV files in a local folder or on S3.

A table is a folder of ``part-*.parquet`` / ``*.csv`` files (or one such file). A CSV whose first line
is all numbers has no header; its columns are then ``col1, col2, ...`` as in the manual's example.

* :func:`TableRecordDataset` is ``tf.data.TableRecordDataset``: typed columns (``record_defaults``, the
  default fills an empty cell), ``selected_cols`` / ``excluded_cols``, ``slice_id`` of ``slice_count``
  contiguous row ranges, a WorkQueue item's ``?start=a&end=b`` range, and prefetching.
* :class:`TableWriter` is ``tf.python_io.TableWriter``: one slice per writer (``slice_id``), rows given
  with their column numbers, written to the table only on ``close()`` (a crashed writer leaves nothing).

In a job started with ``--tables``/``--outputs``, the rank's tables are :func:`tables` / :func:`outputs`
and their storage options (S3 endpoint, keys) come with them, so a URI is all a script names.
"""

from __future__ import annotations

import io
import json
import os
import uuid
from collections.abc import Iterator, Sequence
from typing import Any

from pai_lab.pai_tf.work_items import row_range

TABLE_SUFFIXES = (".parquet", ".csv")
CHUNK_ROWS = 4096
MAX_SLICE_ID = 10_000_000
ENV_FILE = "PAI_LAB_TABLES_FILE"


# ---------------------------------------------------------------- the job's tables


def _job_tables() -> dict:
    path = os.environ.get(ENV_FILE)
    if not path:
        return {"tables": [], "outputs": []}
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def tables() -> list[str]:
    """The URIs of the job's ``--tables``, in order."""
    return [t["uri"] for t in _job_tables()["tables"]]


def outputs() -> list[str]:
    """The URIs of the job's ``--outputs``, in order."""
    return [t["uri"] for t in _job_tables()["outputs"]]


def _options(uri: str, storage_options: dict | None) -> dict:
    if storage_options is not None:
        return storage_options
    known = _job_tables()
    for entry in known["tables"] + known["outputs"]:
        if uri.startswith(entry["uri"].rstrip("/")):
            return entry.get("storage_options") or {}
    return {}


def _fs(uri: str, storage_options: dict | None):
    from fsspec.core import url_to_fs

    return url_to_fs(uri, **_options(uri, storage_options))


def is_table(work: str) -> bool:
    """A Parquet or CSV file, or a folder (no file suffix): a table a WorkQueue cuts into row ranges."""
    base = work.split("?", 1)[0].rstrip("/")
    name = base.rsplit("/", 1)[-1]
    return base.endswith(TABLE_SUFFIXES) or "." not in name


def table_files(uri: str, storage_options: dict | None = None) -> list[tuple[Any, str]]:
    """(file system, path) of each of the table's files, in name order."""
    fs, path = _fs(uri, storage_options)
    if path.endswith(TABLE_SUFFIXES):
        return [(fs, path)]
    if not fs.isdir(path):
        raise FileNotFoundError(f"table {uri!r}: no such folder or .parquet/.csv file")
    found = sorted(p for p in fs.ls(path, detail=False) if p.endswith(TABLE_SUFFIXES) and "/_" not in p[len(path) :])
    if not found:
        raise FileNotFoundError(f"table {uri!r} holds no .parquet or .csv file")
    return [(fs, p) for p in found]


def _read_file(fs, path: str, columns: list[str] | None = None):
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    with fs.open(path, "rb") as f:
        if path.endswith(".parquet"):
            return pq.read_table(f, columns=columns)
        data = f.read()
    first = data.split(b"\n", 1)[0].decode("utf-8", "replace").strip()
    try:
        [float(v) for v in first.split(",")]
        read = pacsv.ReadOptions(column_names=[f"col{i + 1}" for i in range(len(first.split(",")))])
    except ValueError:
        read = pacsv.ReadOptions()
    table = pacsv.read_csv(io.BytesIO(data), read_options=read)
    return table.select(columns) if columns else table


def count_rows(uri: str, storage_options: dict | None = None) -> int:
    import pyarrow.parquet as pq

    total = 0
    for fs, path in table_files(uri, storage_options):
        if path.endswith(".parquet"):
            with fs.open(path, "rb") as f:
                total += pq.ParquetFile(f).metadata.num_rows
        else:
            total += _read_file(fs, path).num_rows
    return total


def read_table(uri: str, storage_options: dict | None = None, columns: Sequence[str] | None = None):
    """The whole table (or a ``?start=a&end=b`` range of it) as a pyarrow Table."""
    import pyarrow as pa

    base, start, end = row_range(uri)
    wanted = list(columns) if columns else None
    if start is None:
        parts = [_read_file(fs, p, wanted) for fs, p in table_files(base, storage_options)]
    else:
        parts = _read_range(table_files(base, storage_options), start, end if end is not None else 2**62, wanted)
    if not parts:
        return _read_file(*table_files(base, storage_options)[0], wanted).slice(0, 0)
    return pa.concat_tables(parts, promote_options="permissive") if len(parts) > 1 else parts[0]


def _read_range(files, start: int, end: int, columns: list[str] | None) -> list:
    """Rows [start, end) of the files taken in order; of a Parquet file only the row groups it needs."""
    import pyarrow.parquet as pq

    parts, offset = [], 0
    for fs, path in files:
        if offset >= end:
            break
        if not path.endswith(".parquet"):
            table = _read_file(fs, path, columns)
            lo, hi = max(start, offset), min(end, offset + table.num_rows)
            if lo < hi:
                parts.append(table.slice(lo - offset, hi - lo))
            offset += table.num_rows
            continue
        with fs.open(path, "rb") as f:
            parquet = pq.ParquetFile(f)
            for group in range(parquet.metadata.num_row_groups):
                rows = parquet.metadata.row_group(group).num_rows
                lo, hi = max(start, offset), min(end, offset + rows)
                if lo < hi:
                    parts.append(parquet.read_row_group(group, columns=columns).slice(lo - offset, hi - lo))
                offset += rows
    return parts


# ---------------------------------------------------------------- reading


def _dtype(default):
    import numpy as np
    import tensorflow as tf

    if isinstance(default, tf.dtypes.DType):
        return default
    if isinstance(default, bool | np.bool_):
        return tf.bool
    if isinstance(default, np.generic):
        return tf.as_dtype(default.dtype)
    if isinstance(default, int):
        return tf.int64
    if isinstance(default, float):
        return tf.float32
    if isinstance(default, str | bytes):
        return tf.string
    raise ValueError(f"record_defaults: {default!r} is not a FLOAT32, FLOAT64, INT32, INT64, BOOL or STRING default")


def _columns(uri: str, storage_options, selected_cols, excluded_cols) -> list[str]:
    if selected_cols and excluded_cols:
        raise ValueError("give selected_cols or excluded_cols, not both")
    fs, path = table_files(row_range(uri)[0], storage_options)[0]
    names = _read_file(fs, path).column_names
    if selected_cols:
        chosen = [c.strip() for c in selected_cols.split(",") if c.strip()]
        missing = [c for c in chosen if c not in names]
        if missing:
            raise ValueError(f"selected_cols: table {uri!r} has no column {missing[0]!r}; it has {', '.join(names)}")
        return chosen
    excluded = {c.strip() for c in (excluded_cols or "").split(",")}
    return [c for c in names if c not in excluded]


def _convert(column, default, dtype, name: str):
    import numpy as np
    import pyarrow as pa

    as_numpy = dtype.as_numpy_dtype
    if dtype.name == "string":
        values = column.cast(pa.string()).fill_null(str(default)).to_pylist()
        return np.array([v.encode("utf-8") for v in values], dtype=object)
    try:
        target = pa.from_numpy_dtype(np.dtype(as_numpy))
        return column.cast(target).fill_null(default).to_numpy(zero_copy_only=False).astype(as_numpy)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, ValueError) as exc:
        raise ValueError(f"column {name!r} ({column.type}) cannot be read as {dtype.name}: {exc}") from None


def _slice_rows(rows: int, slice_id: int, slice_count: int) -> tuple[int, int]:
    return rows * slice_id // slice_count, rows * (slice_id + 1) // slice_count


def TableRecordDataset(
    filenames: Sequence[str] | str,
    record_defaults: Sequence,
    selected_cols: str | None = None,
    excluded_cols: str | None = None,
    slice_id: int = 0,
    slice_count: int = 1,
    num_threads: int = 0,
    capacity: int = 0,
    storage_options: dict | None = None,
):
    """A tf.data Dataset of this slice's rows, one tuple of typed scalars per row."""
    import tensorflow as tf

    if isinstance(filenames, str):
        filenames = [f for f in filenames.split(",") if f.strip()]
    if not filenames:
        raise ValueError("filenames: name at least one table")
    if not 0 <= slice_id < slice_count:
        raise ValueError(f"slice_id must be 0 to slice_count - 1 ({slice_count - 1}), got {slice_id}")
    if not 0 <= num_threads <= 64:
        raise ValueError(f"num_threads: give 1 to 64 (0: automatic), got {num_threads}")
    defaults = list(record_defaults)
    dtypes = [_dtype(d) for d in defaults]
    names = _columns(filenames[0], storage_options, selected_cols, excluded_cols)
    if len(names) != len(defaults):
        raise ValueError(
            f"record_defaults has {len(defaults)} types for {len(names)} columns ({', '.join(names)}); "
            "give one default per column or choose columns with selected_cols"
        )

    def chunks() -> Iterator[tuple]:
        for uri in filenames:
            base, first, last = row_range(uri)
            if first is None:
                first, last = 0, count_rows(base, storage_options)
            lo, hi = _slice_rows((last or first) - first, slice_id, slice_count)
            sep = "&" if "?" in base else "?"
            table = read_table(f"{base}{sep}start={first + lo}&end={first + hi}", storage_options, names)
            for at in range(0, table.num_rows, CHUNK_ROWS):
                part = table.slice(at, CHUNK_ROWS)
                yield tuple(_convert(part.column(n), d, t, n) for n, d, t in zip(names, defaults, dtypes, strict=True))

    signature = tuple(tf.TensorSpec(shape=(None,), dtype=t) for t in dtypes)
    dataset = tf.data.Dataset.from_generator(chunks, output_signature=signature).unbatch()
    buffer = capacity or tf.data.AUTOTUNE  # rows read ahead of the consumer
    return dataset.prefetch(buffer)


# ---------------------------------------------------------------- writing


class TableWriter:
    """``TableWriter(table, slice_id=0)``: opening clears this slice; ``write(values, indices)`` buffers
    rows (``indices``: the 0-based column numbers of the values); ``close()`` writes the slice's file.
    Columns are named ``columns[i]`` when given, else ``c<i>``."""

    def __init__(
        self,
        table: str,
        slice_id: int = 0,
        columns: Sequence[str] | None = None,
        format: str = "parquet",
        storage_options: dict | None = None,
    ):
        if not 0 <= int(slice_id) < MAX_SLICE_ID:
            raise ValueError(f"slice_id: give 0 to {MAX_SLICE_ID - 1}, got {slice_id}")
        if format not in ("parquet", "csv"):
            raise ValueError(f"format: parquet or csv, got {format!r}")
        self.table, self.slice_id, self.format = table.rstrip("/"), int(slice_id), format
        self.columns = list(columns) if columns else None
        self.fs, self.path = _fs(self.table, storage_options)
        self.rows: dict[int, list] = {}
        self.count = 0
        self.closed = False
        self.fs.makedirs(self.path, exist_ok=True)
        for old in self.fs.glob(f"{self.path}/part-{self.slice_id:05d}.*"):
            self.fs.rm(old)  # every open starts its slice empty

    def write(self, values, indices: Sequence[int]) -> None:
        if self.closed:
            raise ValueError("this TableWriter is closed; open the table again to write")
        indices = [int(i) for i in indices]
        rows = list(values)
        if rows and not isinstance(rows[0], list | tuple) and not hasattr(rows[0], "__len__"):
            rows = [rows]  # one row of scalars
        elif rows and isinstance(rows[0], str | bytes):
            rows = [rows]
        for row in rows:
            row = list(row)
            if len(row) != len(indices):
                raise ValueError(f"a row has {len(row)} values for {len(indices)} indices {indices}")
            for column, value in zip(indices, row, strict=True):
                cells = self.rows.setdefault(column, [None] * self.count)
                cells.append(value.item() if hasattr(value, "item") else value)
            self.count += 1
            for cells in self.rows.values():
                cells.extend([None] * (self.count - len(cells)))

    def close(self) -> str | None:
        """Write the slice (``part-<slice_id>.parquet``); the rows appear in the table only now."""
        if self.closed:
            return None
        self.closed = True
        import pyarrow as pa
        import pyarrow.csv as pacsv
        import pyarrow.parquet as pq

        names = {i: (self.columns[i] if self.columns and i < len(self.columns) else f"c{i}") for i in self.rows}
        table = pa.table({names[i]: self.rows[i] for i in sorted(self.rows)})
        target = f"{self.path}/part-{self.slice_id:05d}.{self.format}"
        staging = f"{self.path}/_temporary/{uuid.uuid4().hex}.{self.format}"
        self.fs.makedirs(f"{self.path}/_temporary", exist_ok=True)
        with self.fs.open(staging, "wb") as f:
            pq.write_table(table, f) if self.format == "parquet" else pacsv.write_csv(table, f)
        self.fs.mv(staging, target)
        return target

    def __enter__(self) -> TableWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.closed = True  # a failed block leaves its slice unwritten
