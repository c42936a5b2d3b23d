"""Reading and writing Parquet tables.

`pandas.read_parquet` opens local paths as Python file objects; Arrow then reads them from its I/O
thread pool, and about one process in thirty aborts at interpreter exit ("terminate called without an
active exception", status 134), turning a finished step or a clean one-line error into a crash. Reading
by path through Arrow's own file system never hands Arrow a Python file, so every table is read here.

Writes are atomic (a partial file, fsync, rename): a reader, or a job resumed after a kill, never sees half
a table.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq


def read_parquet(path: str | Path, columns: list[str] | None = None) -> pd.DataFrame:
    return pq.read_table(os.fspath(path), columns=columns).to_pandas()


def write_parquet_atomic(frame: pd.DataFrame, path: Path, metadata: dict[bytes, bytes] | None = None) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    table = pa.Table.from_pandas(frame, preserve_index=False)
    if metadata:
        table = table.replace_schema_metadata({**(table.schema.metadata or {}), **metadata})
    partial = path.with_name(path.name + ".partial")
    with open(partial, "wb") as sink:
        pq.write_table(table, sink)
        sink.flush()
        os.fsync(sink.fileno())  # the rename must not reach the disk before the data (node failure)
    os.replace(partial, path)
