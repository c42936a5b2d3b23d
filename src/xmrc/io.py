"""Reading and writing the tables and arrays passed between steps: the one home of both.

Reads fail as one `XmrcError` line that names the file (not found, unreadable, missing columns).
Parquet is read by path through Arrow's own file system: `pandas.read_parquet` opens local paths as
Python file objects, Arrow then reads them from its I/O thread pool, and about one process in thirty
aborts at interpreter exit ("terminate called without an active exception", status 134).

Writes are atomic (a partial file beside the target, fsync, rename): a reader, or a job resumed after a
kill, never sees half a file. A partial file is `<name>.partial` (`.partial.npy` for arrays, which NumPy
would otherwise rename), so checkpoint folders can sweep up what a kill interrupted. A write that fails for
lack of space (ENOSPC, or EDQUOT: a quota) removes its partial file or folder at once (it would only hold
space the user is short of) and raises `NoSpace`: one line naming the target, never a traceback.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import yaml

from xmrc.exceptions import XmrcError

PARTIAL = ".partial"
NO_SPACE_ERRNOS = (errno.ENOSPC, errno.EDQUOT)


class NoSpace(XmrcError):
    """A write of `path` that failed for lack of space or quota, its partial output removed; `advice`: what to
    do (a sharded job adds what a rerun resumes from)."""

    def __init__(self, path: str | Path, reason: str, advice: str = "free space and rerun"):
        self.path, self.reason = Path(path), reason
        super().__init__(f"{path}: {reason}, nothing partial kept; {advice}")


def no_space_error(error: BaseException | None) -> OSError | None:
    """The OSError for lack of space (ENOSPC, EDQUOT) that `error` is, or was raised from or while handling
    (libraries wrap OS errors); None when there is none."""
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, OSError) and error.errno in NO_SPACE_ERRNOS:
            return error
        error = error.__cause__ or error.__context__
    return None


def no_space_reason(error: BaseException) -> str | None:
    """The OS's words for `no_space_error(error)` ("no space left on device", "disk quota exceeded"), or None."""
    if (found := no_space_error(error)) is None:
        return None
    words = os.strerror(found.errno)
    return words[:1].lower() + words[1:]


# --- reading ---


def read_parquet(path: str | Path, columns: list[str] | None = None) -> pd.DataFrame:
    """A Parquet table by path (Arrow's file system, see the module's docstring); errors are Arrow's."""
    return pq.read_table(os.fspath(path), columns=columns, page_checksum_verification=True).to_pandas()


def require_columns(frame: pd.DataFrame, columns: Iterable[str], where: str | Path) -> None:
    """One error line naming `where` (the file, or what the table is) and the columns `frame` lacks."""
    missing = [column for column in columns if column not in frame.columns]
    if missing:
        raise XmrcError(f"{where}: missing column(s) {', '.join(missing)}")


def read_table(
    path: str | Path, required: Iterable[str] = (), columns: list[str] | None = None, **read_csv
) -> pd.DataFrame:
    """A Parquet or CSV table (by suffix), with the `required` columns, or one error line naming the file;
    `read_csv` options (CSV only) go to pandas.read_csv."""
    path = Path(path)
    kind = "CSV" if path.suffix == ".csv" else "Parquet"
    try:
        frame = pd.read_csv(path, usecols=columns, **read_csv) if kind == "CSV" else read_parquet(path, columns)
    except FileNotFoundError:
        raise XmrcError(f"{path}: file not found") from None
    except Exception as error:  # Arrow and pandas raise many kinds for a damaged or foreign file
        raise XmrcError(f"{path}: not a readable {kind} table ({type(error).__name__})") from None
    require_columns(frame, required, path)
    return frame


def read_array(path: str | Path, mmap_mode: str | None = None) -> np.ndarray:
    try:
        return np.load(path, mmap_mode=mmap_mode, allow_pickle=False)
    except FileNotFoundError:
        raise XmrcError(f"{path}: file not found") from None
    except (OSError, ValueError) as error:
        raise XmrcError(f"{path}: not a readable .npy array ({type(error).__name__})") from None


def read_json(path: str | Path):
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise XmrcError(f"{path}: file not found") from None
    except (OSError, ValueError) as error:
        raise XmrcError(f"{path}: not readable JSON ({type(error).__name__})") from None


def read_yaml(path: str | Path) -> Any:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise XmrcError(f"{path}: file not found") from None
    return parse_yaml(text, path)


def parse_yaml(text: str, source: str | Path) -> Any:
    """YAML text, or one error line naming `source` (the file it is, or will be, written to)."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark else ""
        raise XmrcError(f"{source}: not valid YAML{where}") from None


# --- writing ---


def partial_path(path: str | Path) -> Path:
    path = Path(path)
    suffix = PARTIAL + ".npy" if path.suffix == ".npy" else PARTIAL
    return path.with_name(path.name + suffix)


def make_directory(path: str | Path) -> Path:
    """`path` and its parents as directories, or `NoSpace` naming it."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        if reason := no_space_reason(error):
            raise NoSpace(path, reason) from error
        raise
    return path


def write_atomic(path: str | Path, write: Callable[[IO[bytes]], None]) -> Path:
    """Run `write(sink)` on a partial file beside `path`, make it durable, then rename it into place. Out of
    space (at the write, the flush, the fsync or the rename): the partial file removed, `NoSpace` naming `path`."""
    path = Path(path)
    make_directory(path.parent)
    partial = partial_path(path)
    try:
        with open(partial, "wb") as sink:
            write(sink)
            sink.flush()
            os.fsync(sink.fileno())  # the rename must not reach the disk before the data (node failure)
        os.replace(partial, path)
    except Exception as error:
        if reason := no_space_reason(error):
            raise NoSpace(path, reason) from error
        raise
    finally:
        partial.unlink(missing_ok=True)
    return path


@contextmanager
def write_directory_atomic(path: str | Path) -> Iterator[Path]:
    """Yield an empty partial path beside the directory `path` to assemble it in (not created: some writers
    insist on creating it); when the block ends without an error, it replaces `path`. After a failure the
    partial directory stays for inspection and is cleared by the next attempt, except when the failure is
    for lack of space: then it is removed at once and `NoSpace` names `path`."""
    path = Path(path)
    partial = partial_path(path)
    shutil.rmtree(partial, ignore_errors=True)
    make_directory(path.parent)
    try:
        yield partial
        shutil.rmtree(path, ignore_errors=True)
        os.replace(partial, path)
    except Exception as error:
        if reason := (error.reason if isinstance(error, NoSpace) else no_space_reason(error)):
            shutil.rmtree(partial, ignore_errors=True)
            raise NoSpace(path, reason) from error
        raise


def write_parquet(frame: pd.DataFrame, path: str | Path, metadata: dict[bytes, bytes] | None = None) -> Path:
    table = pa.Table.from_pandas(frame, preserve_index=False)
    if metadata:
        table = table.replace_schema_metadata({**(table.schema.metadata or {}), **metadata})
    # page checksums: a page whose bytes changed on disk (a bad block, a faulty copy) is refused when read
    return write_atomic(path, lambda sink: pq.write_table(table, sink, write_page_checksum=True))


def write_csv(frame: pd.DataFrame, path: str | Path, **to_csv) -> Path:
    """`frame` as CSV, without its index unless to_csv says index=True."""
    csv = frame.to_csv(**({"index": False} | to_csv))
    return write_atomic(path, lambda sink: sink.write(csv.encode("utf-8")))


def write_text(text: str, path: str | Path) -> Path:
    return write_atomic(path, lambda sink: sink.write(text.encode("utf-8")))


def write_json(value, path: str | Path) -> Path:
    return write_text(json.dumps(value, indent=1, sort_keys=True, default=str) + "\n", path)


def write_array(array: np.ndarray, path: str | Path) -> Path:
    return write_atomic(path, lambda sink: np.save(sink, array, allow_pickle=False))


def write_array_blocks(blocks: Iterable[np.ndarray], shape: tuple[int, ...], dtype, path: str | Path) -> Path:
    """A .npy array of `shape` written block by block (consecutive rows, e.g. a job's shards, memory-mapped):
    the whole array never has to be in memory. The same bytes as `write_array` of the whole."""

    def write(sink: IO[bytes]) -> None:
        header = {"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)), "fortran_order": False, "shape": shape}
        np.lib.format.write_array_header_1_0(sink, header)
        for block in blocks:
            sink.write(np.ascontiguousarray(block, dtype=dtype).tobytes())

    return write_atomic(path, write)
