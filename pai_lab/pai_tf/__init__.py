"""PAI-TF's data extensions over Dask, Parquet/CSV and S3: ``WorkQueue`` (elastic sharding: ranks pull
work items from one queue), ``TableRecordDataset`` (a typed tf.data reader of a table's slice) and
``TableWriter`` (one slice of an output table per writer, visible once closed).

Inside a job submitted with ``--tables``/``--outputs`` a rank gets the PAI-TF flags of the same names
(and ``PAI_LAB_TABLES`` / ``PAI_LAB_OUTPUTS``); :func:`tables` and :func:`outputs` read them.
Names load on first use, so ``import pai_lab.pai_tf`` costs nothing.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "WorkQueue": "pai_lab.pai_tf.work_queue",
    "TableRecordDataset": "pai_lab.pai_tf.table_io",
    "TableWriter": "pai_lab.pai_tf.table_io",
    "read_table": "pai_lab.pai_tf.table_io",
    "count_rows": "pai_lab.pai_tf.table_io",
    "tables": "pai_lab.pai_tf.table_io",
    "outputs": "pai_lab.pai_tf.table_io",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'pai_lab.pai_tf' has no attribute {name!r}")
