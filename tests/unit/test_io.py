"""Tables are read through Arrow's file system, never through a Python file object (see xmrc.io). Writes are
atomic, and one that runs out of space (a real ENOSPC: /dev/full) leaves nothing partial and says so in one line."""

import errno
import os
import re

import numpy as np
import pandas as pd
import pytest

from helpers import ROOT
from helpers.workflow import assert_one_line_error, xmrc
from xmrc.cli import main
from xmrc.exceptions import XmrcError
from xmrc.io import (
    NoSpace,
    partial_path,
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


# --- out of space: /dev/full fails every write with ENOSPC ---

needs_dev_full = pytest.mark.skipif(not os.path.exists("/dev/full"), reason="no /dev/full on this system")


def _full_partial(target):
    """The partial file of `target` made a link to /dev/full: the atomic write of `target` runs out of space."""
    partial_path(target).parent.mkdir(parents=True, exist_ok=True)
    partial_path(target).symlink_to("/dev/full")


@needs_dev_full
@pytest.mark.parametrize(
    "write",
    [
        lambda path: write_parquet(pd.DataFrame({"id": ["a"] * 1000, "f1": range(1000)}), path),
        lambda path: write_array(np.arange(100_000), path),
        lambda path: write_json({"a": 1}, path),  # a few bytes: the failure comes at the flush
    ],
    ids=["parquet", "array", "json"],
)
def test_a_write_out_of_space_leaves_the_old_file_no_partial_and_one_line_naming_it(tmp_path, write):
    target = tmp_path / "out" / "table.npy"
    write_array(np.arange(3), target)
    _full_partial(target)
    with pytest.raises(NoSpace) as caught:
        write(target)
    assert str(caught.value) == (f"{target}: no space left on device, nothing partial kept; free space and rerun")
    assert isinstance(caught.value, XmrcError) and caught.value.path == target
    assert sorted(p.name for p in target.parent.iterdir()) == ["table.npy"]  # the partial (link) removed
    assert read_array(target).tolist() == [0, 1, 2]  # the old file untouched


def test_a_quota_exceeded_is_reported_the_same_way(tmp_path):
    def over_quota(sink):
        sink.write(b"half")
        raise OSError(errno.EDQUOT, os.strerror(errno.EDQUOT))

    with pytest.raises(NoSpace, match=r"x\.csv: disk quota exceeded, nothing partial kept; free space and rerun$"):
        write_atomic(tmp_path / "x.csv", over_quota)
    assert list(tmp_path.iterdir()) == []


def test_a_directory_that_cannot_be_made_for_lack_of_space_is_named(tmp_path, monkeypatch):
    def no_space(self, *args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(self))

    monkeypatch.setattr(type(tmp_path), "mkdir", no_space)
    with pytest.raises(NoSpace, match=f"^{re.escape(str(tmp_path / 'sub'))}: no space left on device"):
        write_json({}, tmp_path / "sub" / "x.json")


@needs_dev_full
def test_write_directory_atomic_out_of_space_removes_the_partial_directory(tmp_path):
    target = tmp_path / "model"
    target.mkdir()
    (target / "old.txt").write_text("old")

    def assemble(write_file):
        with write_directory_atomic(target) as partial:
            partial.mkdir()
            (partial / "config.json").write_text("{}")
            write_file(partial)

    def library_write(partial):  # a library's own write (e.g. save_pretrained): a bare OSError
        with open("/dev/full", "wb") as sink:
            sink.write(b"weights")

    def xmrc_write(partial):  # a write through xmrc.io inside the folder: named as the folder
        _full_partial(partial / "weights.npy")
        write_array(np.arange(10), partial / "weights.npy")

    for write_file in (library_write, xmrc_write):
        with pytest.raises(NoSpace) as caught:
            assemble(write_file)
        assert str(caught.value) == f"{target}: no space left on device, nothing partial kept; free space and rerun"
        assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]  # no model.partial left
        assert [p.name for p in target.iterdir()] == ["old.txt"]


@needs_dev_full
def test_the_cli_reports_a_write_out_of_space_in_one_line(tmp_path):
    generations = tmp_path / "generations.parquet"
    frame = pd.DataFrame(
        {
            "model": ["m"],
            "shots": [0],
            "prompt_format": ["v1"],
            "id": ["a"],
            "context_lang": ["en"],
            "question_lang": ["en"],
            "answer_lang": ["en"],
            "gold": ["Paris"],
            "prediction": ["Paris"],
        }
    )
    write_parquet(frame, generations)
    out = tmp_path / "scores" / "x.parquet"
    _full_partial(out)
    result = xmrc("score", "--generations", generations, "--normalization", "mlqa", "--out", out)
    assert_one_line_error(result)
    assert result.stderr.strip() == (
        f"xmrc: error: {out}: no space left on device, nothing partial kept; free space and rerun"
    )
    assert list(out.parent.iterdir()) == []


@needs_dev_full
def test_the_cli_turns_any_uncaught_out_of_space_error_into_one_line(monkeypatch, capsys):
    from xmrc.cli import data

    def library_write(args):
        """a write outside xmrc.io: the OS error carries no file name"""
        with open("/dev/full", "wb") as sink:
            sink.write(b"x")

    def named_write(args):
        """a library's wrapped error, the file named"""
        raise RuntimeError("wrapped") from OSError(errno.EDQUOT, os.strerror(errno.EDQUOT), "cache/blob")

    argv = ["score", "--generations", "g.parquet", "--normalization", "mlqa", "--out", "o.parquet"]
    for func, line in [
        (library_write, "xmrc: error: no space left on device; free space and rerun"),
        (named_write, "xmrc: error: cache/blob: disk quota exceeded; free space and rerun"),
    ]:
        monkeypatch.setattr(data, "cmd_score", func)
        assert main(argv) == 2
        assert capsys.readouterr().err == line + "\n"

    def other_error(args):
        """any other OS error: not turned into a line here"""
        raise OSError(errno.EACCES, "Permission denied", "x")

    monkeypatch.setattr(data, "cmd_score", other_error)
    with pytest.raises(PermissionError):
        main(argv)
