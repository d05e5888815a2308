"""TableRecordDataset and TableWriter over Parquet and CSV, in a local folder and on S3 (moto on
loopback), read with real TensorFlow."""

from __future__ import annotations

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

from pai_lab.pai_tf import TableRecordDataset, TableWriter, count_rows, read_table  # noqa: E402


def _rows(dataset) -> list[tuple]:
    return [tuple(v.numpy().item() if v.dtype != tf.string else v.numpy().decode() for v in row) for row in dataset]


def _write_example(table: str, options=None) -> None:
    # the manual's TableWriter example: uid bigint, name string, price double, virtual bool
    with TableWriter(table, slice_id=0, columns=["uid", "name", "price", "virtual"], storage_options=options) as w:
        w.write([(25, "Apple", 5.0, False), (38, "Pear", 4.5, False)], indices=[0, 1, 2, 3])
        w.write((17, "Watermelon", 2.2, False), indices=(0, 1, 2, 3))  # one row


def test_writer_slices_visible_on_close_and_typed_reads(tmp_path):
    table = str(tmp_path / "test_write")
    writer = TableWriter(table, slice_id=1, columns=["uid", "name", "price", "virtual"])
    writer.write([(1, "Fig", 9.5, True)], indices=[0, 1, 2, 3])
    with pytest.raises(FileNotFoundError):
        count_rows(table)  # nothing is in the table before close
    writer.close()
    _write_example(table)
    assert count_rows(table) == 4
    rows = _rows(TableRecordDataset([table], record_defaults=(0, "", 0.0, False)))
    assert rows[0] == (25, "Apple", 5.0, False) and rows[-1] == (1, "Fig", 9.5, True)
    # the manual's example 1: two columns chosen, batches of typed tensors
    ids, prices = next(iter(TableRecordDataset([table], (0, np.float64(0)), selected_cols="uid,price").batch(128)))
    assert ids.dtype == tf.int64 and prices.dtype == tf.float64 and ids.numpy().tolist() == [25, 38, 17, 1]
    # reopening a slice clears it
    TableWriter(table, slice_id=1, columns=["uid", "name", "price", "virtual"]).close()
    assert count_rows(table) == 3


def test_slices_split_rows_contiguously_and_bad_input_is_named(tmp_path):
    table = tmp_path / "numbers.csv"
    table.write_text("\n".join(f"{i},{i * 0.5},{'' if i == 3 else i % 2}" for i in range(10)) + "\n")
    parts = [
        [r[0] for r in _rows(TableRecordDataset([str(table)], (0, 0.0, 7), slice_id=s, slice_count=3))]
        for s in range(3)
    ]
    assert parts == [[0, 1, 2], [3, 4, 5], [6, 7, 8, 9]]  # contiguous ranges, not round robin
    filled = _rows(TableRecordDataset([f"{table}?start=3&end=4"], (0, 0.0, 7)))
    assert filled == [(3, 1.5, 7)]  # a WorkQueue item's row range; the empty cell takes its default
    with pytest.raises(ValueError, match="record_defaults has 2 types for 3 columns"):
        TableRecordDataset([str(table)], (0, 0.0))
    with pytest.raises(ValueError, match="selected_cols or excluded_cols, not both"):
        TableRecordDataset([str(table)], (0,), selected_cols="col1", excluded_cols="col2")
    with pytest.raises(ValueError, match="no column 'nope'"):
        TableRecordDataset([str(table)], (0,), selected_cols="nope")
    text = tmp_path / "words.csv"
    text.write_text("a,b\nx,1\n")
    with pytest.raises(tf.errors.InvalidArgumentError, match="cannot be read as int64"):
        list(TableRecordDataset([str(text)], (0, 0)))  # a type that does not fit fails when read


def test_tables_on_s3(s3_bucket):
    bucket, options = s3_bucket
    table = f"s3://{bucket}/tables/test_write"
    _write_example(table, options)
    with TableWriter(table, 2, ["uid", "name", "price", "virtual"], format="csv", storage_options=options) as w:
        w.write([(99, "Kiwi", 1.0, True)], indices=[0, 1, 2, 3])
    assert count_rows(table, options) == 3 + 1
    assert read_table(table + "?start=1&end=3", options).column("name").to_pylist() == ["Pear", "Watermelon"]
    names = _rows(TableRecordDataset([table], ("",), selected_cols="name", storage_options=options))
    assert [n for (n,) in names][:3] == ["Apple", "Pear", "Watermelon"]


def test_a_row_range_reads_across_files_and_row_groups(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    for part, first in enumerate((0, 35)):
        rows = pa.table({"n": list(range(first, first + 35))})
        pq.write_table(rows, tmp_path / f"part-{part:05d}.parquet", row_group_size=10)
    assert read_table(f"{tmp_path}?start=25&end=48").column("n").to_pylist() == list(range(25, 48))
    assert read_table(f"{tmp_path}?start=70&end=80").num_rows == 0
    second = _rows(TableRecordDataset([f"{tmp_path}?start=10&end=20"], (0,), slice_id=1, slice_count=2))
    assert second == [(n,) for n in range(15, 20)]  # a slice of the item's range
