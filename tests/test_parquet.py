"""Tables are read through Arrow's file system, never through a Python file object (see xmrc.parquet)."""

import re
from pathlib import Path

import pandas as pd

from xmrc.parquet import read_parquet

ROOT = Path(__file__).resolve().parents[1]


def test_read_parquet_round_trips_columns_and_types(tmp_path):
    frame = pd.DataFrame({"id": ["a", "b"], "shots": [0, 2], "f1": [0.5, 1.0], "raw_output": ["x", ""]})
    frame.to_parquet(tmp_path / "t.parquet", index=False)
    pd.testing.assert_frame_equal(read_parquet(tmp_path / "t.parquet"), frame)
    pd.testing.assert_frame_equal(read_parquet(str(tmp_path / "t.parquet"), columns=["f1", "id"]), frame[["f1", "id"]])


def test_no_code_reads_parquet_through_pandas_file_handles():
    # pandas.read_parquet hands Arrow a Python file; such processes abort at exit now and then (status 134)
    pattern = re.compile(r"\b(pd|pandas)\.read_parquet\(")
    offenders = [f"{path.relative_to(ROOT)}:{number}"
                 for folder in ("src", "bench", "tests", "workflow") for path in sorted((ROOT / folder).rglob("*"))
                 if path.suffix in (".py", ".smk") and path.is_file()
                 for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
                 if pattern.search(line) and path.name != "test_parquet.py"]
    assert offenders == []
