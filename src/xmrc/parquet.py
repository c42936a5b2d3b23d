"""Reading Parquet tables.

`pandas.read_parquet` opens local paths as Python file objects; Arrow then reads them from its I/O
thread pool, and about one process in thirty aborts at interpreter exit ("terminate called without an
active exception", status 134), turning a finished step or a clean one-line error into a crash. Reading
by path through Arrow's own file system never hands Arrow a Python file, so every table is read here.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq


def read_parquet(path: str | Path, columns: list[str] | None = None) -> pd.DataFrame:
    return pq.read_table(os.fspath(path), columns=columns).to_pandas()
