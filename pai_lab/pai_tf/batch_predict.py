"""The program every rank of a predictjob runs (``python -m pai_lab.pai_tf.batch_predict``): the ranks share
the input table through one WorkQueue of row ranges, run the SavedModel on each range and write its
predictions with a TableWriter to the output table, one slice per range.

A slice is written (visible) before its range is finished in the queue, and a range handed out again
(its rank died) rewrites the same slice, so every input row ends with exactly one prediction row:
``row`` (the input's row number), ``prediction`` (the score, or the arg-max class of several) and, for
several outputs, ``probabilities`` (comma-joined, as PAI's DeepFM predict table has them).

Flags besides PAI-TF's own: ``--selected_cols=a,b`` (the model's input columns; default all),
``--num_slices=N`` (ranges in all; default 10 per worker), ``--batch_size=N`` (rows per model call).
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np


def _model(path: str):
    import tensorflow as tf

    loaded = tf.saved_model.load(path)
    signature = loaded.signatures["serving_default"]
    name, spec = next(iter(signature.structured_input_signature[1].items()))

    def predict(features: np.ndarray) -> np.ndarray:
        outputs = signature(**{name: tf.constant(features, dtype=spec.dtype)})
        return np.asarray(outputs[sorted(outputs)[0]]).reshape(len(features), -1)

    return predict


def _rows(result: np.ndarray, first_row: int) -> list[tuple]:
    if result.shape[1] == 1:
        return [(first_row + i, float(v[0])) for i, v in enumerate(result)]
    return [(first_row + i, int(np.argmax(v)), ",".join(f"{p:.6g}" for p in v.tolist())) for i, v in enumerate(result)]


def main(argv: list[str] | None = None) -> int:
    from pai_lab.pai_tf import table_io
    from pai_lab.pai_tf.work_items import row_range
    from pai_lab.pai_tf.work_queue import WorkQueue
    from pai_lab.training.metrics import report

    parser = argparse.ArgumentParser(description="batch prediction over a table")
    parser.add_argument("--tables", default="")
    parser.add_argument("--outputs", default="")
    parser.add_argument("--model", default="", help="a SavedModel folder (default: the job's --model)")
    parser.add_argument("--worker_hosts", default="")
    parser.add_argument("--task_index", type=int, default=0)
    parser.add_argument("--selected_cols", default="")
    parser.add_argument("--num_slices", type=int, default=0)
    parser.add_argument("--batch_size", type=int, default=1024)
    args, _unknown = parser.parse_known_args(argv)
    source = (args.tables or ",".join(table_io.tables())).split(",")[0]
    target = (args.outputs or ",".join(table_io.outputs())).split(",")[0]
    model_path = args.model or table_io._job_tables().get("model", "")
    if not source or not target or not model_path:
        print("batch prediction needs --tables, --outputs and --model", file=sys.stderr)
        return 2
    workers = max(1, len([h for h in args.worker_hosts.split(",") if h]))
    queue = WorkQueue([source], shuffle=False, num_slices=args.num_slices or 10 * workers, name="batch_predict")
    predict = _model(model_path)
    columns = [c for c in args.selected_cols.split(",") if c] or None
    done = rows = 0
    began = time.monotonic()
    for item in queue:
        _table, start, _end = row_range(item)
        table = table_io.read_table(item, columns=columns)
        features = table.to_pandas().to_numpy(dtype=np.float32)
        first = start or 0
        with table_io.TableWriter(target, slice_id=first, columns=["row", "prediction", "probabilities"]) as writer:
            for at in range(0, len(features), args.batch_size):
                result = predict(features[at : at + args.batch_size])
                out = _rows(result, first + at)
                writer.write(out, indices=range(len(out[0])))
        done, rows = done + 1, rows + len(features)
        report(done, rows_predicted=rows)
    print(
        f"rank {args.task_index}: {rows} rows in {done} ranges predicted in {time.monotonic() - began:.2f} s",
        flush=True,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
