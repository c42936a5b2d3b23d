"""Jobs checkpointed by `xmrc.jobs` in tests: killed after some chunks, resumed, shards as a kill left them."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from xmrc import jobs
from xmrc.io import write_parquet


class Killed(Exception):
    """What a job dies of here, as a killed job would."""


@contextlib.contextmanager
def counted_chunks(monkeypatch, module: str, die_after: int | None = None):
    """The sizes of the chunks that `module`'s job computes (its call of `run_sharded`), in order; with
    `die_after`, the job is killed when it starts computing one more chunk than that."""
    computed: list[int] = []

    def run_sharded(items, keys, compute, *rest):
        def counted(chunk):
            if die_after is not None and len(computed) == die_after:
                raise Killed
            computed.append(len(chunk))
            return compute(chunk)

        return jobs.run_sharded(items, keys, counted, *rest)

    with monkeypatch.context() as patch:
        patch.setattr(f"{module}.run_sharded", run_sharded)
        yield computed


def killed_then_resumed(monkeypatch, module: str, output: Path, run):
    """`run()` (a job of `module` writing `output`) killed after its first chunk, then run again to the end:
    (what the second run returned, the sizes of the chunks it computed)."""
    with counted_chunks(monkeypatch, module, die_after=1) as computed, pytest.raises(Killed):
        run()
    assert len(computed) == 1 and not Path(output).exists()
    assert sorted(p.name for p in jobs.shard_dir(output).glob("shard-00000*"))  # the first chunk's shard stays
    with counted_chunks(monkeypatch, module) as computed:
        result = run()
    assert not jobs.shard_dir(output).exists()
    return result, computed


@contextlib.contextmanager
def shards_kept(monkeypatch):
    """Jobs leave their shard folder behind, as a job killed just before the end would."""
    with monkeypatch.context() as patch:
        patch.setattr("xmrc.jobs.close_shard_dir", lambda output: None)
        yield


def rewrite_shard(path: Path, frame) -> None:
    """Replace a table shard's rows, keeping its stamp: a shard of this job, marked to tell it apart."""
    write_parquet(frame, path, {jobs.STAMP_KEY: pq.read_schema(path).metadata[jobs.STAMP_KEY]})
