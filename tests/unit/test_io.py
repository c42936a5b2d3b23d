"""Tables are read through Arrow's file system, never through a Python file object (see xmrc.io)."""

import re

import numpy as np
import pandas as pd
import pytest

from helpers import ROOT
from xmrc.exceptions import XmrcError
from xmrc.io import (
    read_array,
    read_json,
    read_parquet,
    read_table,
    write_array,
    write_atomic,
    write_csv,
    write_directory_atomic,
    write_json,
    write_parquet,
)


def test_read_parquet_round_trips_columns_and_types(tmp_path):
    frame = pd.DataFrame({"id": ["a", "b"], "shots": [0, 2], "f1": [0.5, 1.0], "raw_output": ["x", ""]})
    frame.to_parquet(tmp_path / "t.parquet", index=False)
    pd.testing.assert_frame_equal(read_parquet(tmp_path / "t.parquet"), frame)
    pd.testing.assert_frame_equal(read_parquet(str(tmp_path / "t.parquet"), columns=["f1", "id"]), frame[["f1", "id"]])


def test_no_code_reads_parquet_through_pandas_file_handles():
    # pandas.read_parquet hands Arrow a Python file; such processes abort at exit now and then (status 134)
    pattern = re.compile(r"\b(pd|pandas)\.read_parquet\(")
    offenders = [
        f"{path.relative_to(ROOT)}:{number}"
        for folder in ("src", "bench", "tests", "workflow")
        for path in sorted((ROOT / folder).rglob("*"))
        if path.suffix in (".py", ".smk") and path.is_file()
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if pattern.search(line) and path.name != "test_io.py"
    ]
    assert offenders == []


def test_read_table_names_the_file_for_each_failure(tmp_path):

    frame = pd.DataFrame({"id": ["a"], "f1": [0.5]})
    write_parquet(frame, tmp_path / "t.parquet")
    write_csv(frame, tmp_path / "t.csv")
    pd.testing.assert_frame_equal(read_table(tmp_path / "t.parquet", required=["id"]), frame)
    pd.testing.assert_frame_equal(read_table(tmp_path / "t.csv", required=["f1"]), frame)
    (tmp_path / "bad.parquet").write_text("not parquet")
    for path, message in [
        (tmp_path / "none.parquet", "file not found"),
        (tmp_path / "bad.parquet", "not a readable Parquet table"),
        (tmp_path / "t.csv", "missing column(s) em, lang"),
    ]:
        with pytest.raises(XmrcError) as caught:
            read_table(path, required=["id", "em", "lang"])
        assert str(caught.value) == f"{path}: {message}" or str(caught.value).startswith(f"{path}: {message}")


def test_write_atomic_leaves_the_old_file_and_no_partial_when_the_write_fails(tmp_path):

    target = tmp_path / "sub" / "x.npy"
    write_array(np.arange(3), target)
    assert read_array(target).tolist() == [0, 1, 2]

    def fail(sink):
        sink.write(b"half")
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        write_atomic(target, fail)
    assert read_array(target).tolist() == [0, 1, 2]
    assert sorted(p.name for p in target.parent.iterdir()) == ["x.npy"]
    write_json({"b": 1, "a": [2]}, tmp_path / "m.json")
    assert read_json(tmp_path / "m.json") == {"a": [2], "b": 1}


def test_write_directory_atomic_replaces_the_directory_only_when_assembled(tmp_path):

    target = tmp_path / "model"
    target.mkdir()
    (target / "old.txt").write_text("old")

    def killed_half_way():
        with write_directory_atomic(target) as partial:
            partial.mkdir()
            (partial / "half.txt").write_text("half")
            raise RuntimeError("killed")

    with pytest.raises(RuntimeError, match="killed"):
        killed_half_way()
    assert [p.name for p in target.iterdir()] == ["old.txt"]
    with write_directory_atomic(target) as partial:
        assert not partial.exists()  # the failed attempt's partial directory is cleared
        partial.mkdir()
        (partial / "new.txt").write_text("new")
    assert [p.name for p in target.iterdir()] == ["new.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]
