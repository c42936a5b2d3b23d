"""The checkpoint loop of the long jobs (generation, judge, oracle, relevance, hidden states).

A job writes `<output>.shards/` as it goes: `manifest.json` with the job's fingerprint (a digest of its
settings, as the command was given them, and of its items' keys in order), and one shard per chunk of
items, written atomically (`xmrc.io`) with a stamp: the fingerprint, the chunk's number and size and a
digest of its items' keys. A killed job started again resumes from the folder only when the fingerprint
is the same; a folder left by another job (another model or setting, other items) is discarded with a
warning, so shards of different jobs are never mixed. A shard is reused only when it is readable, carries
this chunk's stamp and has the expected columns (tables) or shape (arrays), and for tables the chunk's
keys in its rows; anything else is recomputed and reported on stderr, never used silently. The folder is
removed once the job's output is written. A shard or output write that fails for lack of space (`NoSpace`,
its partial file removed) stops the job with one line naming the file and how many chunks a rerun, after
space is freed, resumes from.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
from tqdm.auto import tqdm

from xmrc.io import NoSpace, make_directory, read_json, write_array, write_json, write_parquet

MANIFEST = "manifest.json"
STAMP_KEY = b"xmrc.shard"

Item = TypeVar("Item")
Output = TypeVar("Output")


def digest(*parts: str) -> str:
    value = hashlib.sha256()
    for part in parts:
        value.update(part.encode("utf-8", "surrogatepass"))
        value.update(b"\x00")
    return value.hexdigest()


def fingerprint(settings: dict, keys: Iterable[str]) -> str:
    return digest(json.dumps(settings, sort_keys=True, default=str), *keys)


def job_settings(args) -> dict:
    """A command's arguments as fingerprint settings (argparse's handler function left out)."""
    return {name: value for name, value in sorted(vars(args).items()) if not callable(value)}


def shard_dir(output: str | Path) -> Path:
    output = Path(output)
    return output.with_name(output.name + ".shards")


def open_shard_dir(output: str | Path, job_fingerprint: str, manifest: dict | None = None) -> Path:
    """The job's shard folder: kept when it belongs to this fingerprint, else emptied; partial writes removed."""
    directory = shard_dir(output)
    manifest_path = directory / MANIFEST
    if directory.exists():
        try:
            previous = json.loads(manifest_path.read_text()).get("fingerprint")
        except (OSError, ValueError, AttributeError):
            previous = None
        if previous != job_fingerprint:
            if any(directory.glob("shard-*")):
                print(
                    f"xmrc: warning: {directory}: shards of another job (other settings or items), discarded",
                    file=sys.stderr,
                )
            shutil.rmtree(directory)
    make_directory(directory)
    for partial in [*directory.glob("*.partial"), *directory.glob("*.partial.*")]:
        partial.unlink()  # a write the kill interrupted
    if not manifest_path.exists():
        write_json({**(manifest or {}), "fingerprint": job_fingerprint}, manifest_path)
    return directory


def close_shard_dir(output: str | Path) -> None:
    """Remove the shard folder once the job's output is written."""
    shutil.rmtree(shard_dir(output), ignore_errors=True)


# --- shard stores: how one chunk's result is written, and checked and read back ---


class StaleShard(Exception):
    """A shard that cannot be used for its chunk; the message names its file and says why."""


class MissingShard(StaleShard):
    """A chunk not computed yet: nothing to warn about."""


class ShardStore(Protocol):
    def write(self, value, base: Path, stamp: dict) -> None:
        """Write one chunk's `value` at `base` (the shard's path without suffix) with its `stamp`."""
        ...

    def read(self, base: Path, stamp: dict, keys: list[str]):
        """The value stored at `base` for the chunk of `keys`; raises StaleShard when it cannot be used."""
        ...


def table_keys(frame: pd.DataFrame, columns: Sequence[str]) -> list[str]:
    """Each row's values in `columns`, as one string: the rows' item keys."""
    return ["\t".join(map(str, row)) for row in frame[list(columns)].itertuples(index=False)]


@dataclass(frozen=True)
class ParquetStore:
    """A table per chunk, stamped in its Parquet metadata. With `key_columns`, its rows must hold the chunk's
    item keys in order (each item `rows_per_item` times); `rows_per_item` None: any number of rows."""

    columns: Sequence[str]
    key_columns: Sequence[str] = ()
    rows_per_item: int | None = 1
    name: str = ""

    def path(self, base: Path) -> Path:
        return base.with_name(base.name + (f".{self.name}" if self.name else "") + ".parquet")

    def write(self, value: pd.DataFrame, base: Path, stamp: dict) -> None:
        write_parquet(value, self.path(base), {STAMP_KEY: json.dumps(stamp, sort_keys=True).encode()})

    def read(self, base: Path, stamp: dict, keys: list[str]) -> pd.DataFrame:
        path = self.path(base)
        if not path.exists():
            raise MissingShard(path.name)
        try:
            table = pq.read_table(os.fspath(path), page_checksum_verification=True)  # by path: see xmrc.io
        except Exception as error:  # truncated, garbage, not Parquet
            raise StaleShard(f"{path.name}: unreadable ({type(error).__name__})") from None
        if _stamp_of(table.schema.metadata) != stamp:
            raise StaleShard(f"{path.name}: written by another job or chunk")
        missing = [column for column in self.columns if column not in table.column_names]
        if missing:
            raise StaleShard(f"{path.name}: lacks column(s) {', '.join(missing)}")
        if self.rows_per_item is not None and table.num_rows != len(keys) * self.rows_per_item:
            raise StaleShard(
                f"{path.name}: holds {table.num_rows} rows, not {self.rows_per_item} for each of "
                f"the chunk's {len(keys)} items"
            )
        frame = table.to_pandas()
        expected = [key for key in keys for _ in range(self.rows_per_item or 1)]
        if self.key_columns and table_keys(frame, self.key_columns) != expected:
            raise StaleShard(f"{path.name}: rows do not match the chunk's items")
        return frame


def _stamp_of(metadata: dict | None) -> dict | None:
    try:
        return json.loads((metadata or {})[STAMP_KEY])
    except (KeyError, ValueError):
        return None


def _npy(base: Path) -> Path:
    return base.with_name(base.name + ".npy")


def _npy_stamp(base: Path) -> Path:
    return base.with_name(base.name + ".stamp.json")


@dataclass(frozen=True)
class ArrayStore:
    """An array per chunk (one row per item, `dtype`, rows of `trailing_shape`), stamped in a JSON file
    beside it (.npy has no metadata); read back memory-mapped, so a job's arrays need not fit in RAM."""

    trailing_shape: tuple[int, ...]
    dtype: str

    def write(self, value: np.ndarray, base: Path, stamp: dict) -> None:
        write_array(value, _npy(base))
        try:  # after the array: a stamp vouches for a whole one, its bytes' digest for unchanged ones
            write_json({**stamp, "sha256": _array_digest(np.load(_npy(base), mmap_mode="r"))}, _npy_stamp(base))
        except NoSpace:
            _npy(base).unlink(missing_ok=True)  # an array without its stamp would only be recomputed
            raise

    def read(self, base: Path, stamp: dict, keys: list[str]) -> np.ndarray:
        path = _npy(base)
        if not path.exists():
            raise MissingShard(path.name)
        try:
            written = read_json(_npy_stamp(base))
            array = np.load(path, mmap_mode="r")
        except Exception as error:  # no stamp, truncated, not .npy
            raise StaleShard(f"{path.name}: unreadable ({type(error).__name__})") from None
        if not isinstance(written, dict) or {k: v for k, v in written.items() if k != "sha256"} != stamp:
            raise StaleShard(f"{path.name}: written by another job or chunk")
        expected = (len(keys), *self.trailing_shape)
        if array.shape != expected or array.dtype != np.dtype(self.dtype):
            raise StaleShard(f"{path.name}: holds {array.dtype} {array.shape}, not {self.dtype} {expected}")
        if written.get("sha256") != _array_digest(array):
            raise StaleShard(f"{path.name}: its bytes changed since it was written (digest differs)")
        return array


def _array_digest(array: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(array).data).hexdigest()


@dataclass(frozen=True)
class StoreGroup:
    """Several values per chunk (a tuple), one store each, e.g. a table and a table of examples."""

    stores: tuple[ShardStore, ...]

    def write(self, value: tuple, base: Path, stamp: dict) -> None:
        for store, part in zip(self.stores, value):
            store.write(part, base, stamp)

    def read(self, base: Path, stamp: dict, keys: list[str]) -> tuple:
        return tuple(store.read(base, stamp, keys) for store in self.stores)


# --- the loop ---


@dataclass(frozen=True)
class Checkpoint:
    """Where and how a job checkpoints: its output (the shard folder sits beside it), the settings that make
    its fingerprint with the items' keys (put in them whatever else the output depends on: item contents,
    code version, the command's arguments), the chunk size, and its progress bar's label and unit."""

    output: str | Path
    settings: dict
    chunk_size: int
    label: str
    unit: str = "item"
    progress: bool = True


def run_sharded(
    items: Sequence[Item] | pd.DataFrame,
    keys: Sequence[str],
    compute: Callable[[Sequence[Item] | pd.DataFrame], Any],
    store: ShardStore,
    write_output: Callable[[list], Output],
    checkpoint: Checkpoint,
) -> Output:
    """Run `compute` on every chunk of items (a list, or a table's rows) whose shard cannot be reused, then
    `write_output(results)` with the chunks' results in item order, then remove the shard folder; returns
    what `write_output` returns. `keys` name the items (one string each, in order)."""
    output, settings, chunk_size = checkpoint.output, checkpoint.settings, checkpoint.chunk_size
    keys = list(keys)
    chunks = [(first, min(first + chunk_size, len(keys))) for first in range(0, len(keys), chunk_size)]
    job = fingerprint(settings, keys)
    directory = open_shard_dir(output, job, {"settings": settings, "chunks": len(chunks), "items": len(keys)})
    results = []
    reused = 0
    bar = tqdm(total=len(keys), desc=checkpoint.label, unit=checkpoint.unit, disable=not checkpoint.progress)
    try:
        for number, (first, stop) in enumerate(chunks):
            base = directory / f"shard-{number:05d}"
            chunk_keys = keys[first:stop]
            stamp = {"fingerprint": job, "chunk": number, "size": stop - first, "keys": digest(*chunk_keys)}
            try:
                value = store.read(base, stamp, chunk_keys)
                reused += 1
            except StaleShard as problem:
                if not isinstance(problem, MissingShard):  # tqdm.write: not onto the bar's line
                    tqdm.write(f"xmrc: warning: {directory}/{problem}; recomputing the chunk", file=sys.stderr)
                value = compute(items.iloc[first:stop] if isinstance(items, pd.DataFrame) else items[first:stop])
                with _resumable(number, len(chunks)):
                    store.write(value, base, stamp)
                value = store.read(base, stamp, chunk_keys)  # the output is made of what the shards hold
            results.append(value)
            bar.update(stop - first)
    finally:
        bar.close()  # before any error line: the bar's last state must not run into it
    if reused:
        print(
            f"xmrc: resumed {directory}: {reused} of {len(chunks)} chunks from their shards, "
            f"{len(chunks) - reused} computed",
            file=sys.stderr,
        )
    with _resumable(len(chunks), len(chunks)):
        written = write_output(results)
    close_shard_dir(output)
    return written


@contextmanager
def _resumable(done: int, total: int) -> Iterator[None]:
    """A `NoSpace` in the block, its advice saying what a rerun resumes from (the chunks whose shards are kept)."""
    try:
        yield
    except NoSpace as error:
        raise NoSpace(
            error.path, error.reason, f"free space and rerun ({done} of {total} chunks done are kept)"
        ) from error
