"""A checkpointed job whose disk is full (a real ENOSPC: the write's partial file is a link to /dev/full): one
line naming the file and the chunks kept, nothing partial left, and a rerun that computes only what is missing."""

import os

import numpy as np
import pandas as pd
import pytest

from xmrc.io import NoSpace, partial_path, read_parquet, write_parquet
from xmrc.jobs import ArrayStore, Checkpoint, ParquetStore, run_sharded, shard_dir

pytestmark = pytest.mark.skipif(not os.path.exists("/dev/full"), reason="no /dev/full on this system")

ITEMS = ["alpha", "beta", "gamma", "delta", "epsilon"]
TABLE = ParquetStore(["item", "length"], key_columns=["item"])
REFERENCE = pd.DataFrame({"item": ITEMS, "length": [len(item) for item in ITEMS]})


def disk_full_at(path):
    """The next atomic write of `path` runs out of space."""
    partial_path(path).symlink_to("/dev/full")


class Job:
    """Lengths of ITEMS, two a chunk, into a Parquet output; `full_at(number)`: the path whose write fails when
    chunk `number` is computed (None: none)."""

    def __init__(self, output, full_at=lambda number: None, store=TABLE):
        self.output, self.full_at, self.store, self.computed = output, full_at, store, []

    def compute(self, chunk):
        number = ITEMS.index(chunk[0]) // 2
        self.computed.append(number)
        if (path := self.full_at(number)) is not None:
            disk_full_at(path)
        lengths = [len(item) for item in chunk]
        if isinstance(self.store, ArrayStore):
            return np.array(lengths, dtype="int64").reshape(-1, 1)
        return pd.DataFrame({"item": list(chunk), "length": lengths})

    def run(self, write_output=None):
        checkpoint = Checkpoint(self.output, {"job": "lengths"}, 2, "lengths", progress=False)
        write_output = write_output or (lambda frames: write_parquet(pd.concat(frames, ignore_index=True), self.output))
        return run_sharded(ITEMS, ITEMS, self.compute, self.store, write_output, checkpoint)


def leftovers(directory):
    return sorted(p.relative_to(directory).as_posix() for p in directory.rglob("*") if p.is_file() or p.is_symlink())


def test_a_shard_out_of_space_stops_the_job_in_one_line_and_the_rerun_computes_only_the_rest(tmp_path):
    output = tmp_path / "out.parquet"
    shards = shard_dir(output)
    with pytest.raises(NoSpace) as caught:
        Job(output, lambda number: shards / "shard-00001.parquet" if number == 1 else None).run()
    assert str(caught.value) == (
        f"{shards / 'shard-00001.parquet'}: no space left on device, nothing partial kept; "
        "free space and rerun (1 of 3 chunks done are kept)"
    )
    assert leftovers(tmp_path) == ["out.parquet.shards/manifest.json", "out.parquet.shards/shard-00000.parquet"]
    rerun = Job(output)
    rerun.run()
    assert rerun.computed == [1, 2]
    pd.testing.assert_frame_equal(read_parquet(output), REFERENCE)
    assert leftovers(tmp_path) == ["out.parquet"]


def test_an_output_out_of_space_keeps_every_shard_and_the_rerun_computes_nothing(tmp_path):
    output = tmp_path / "out.parquet"
    job = Job(output)

    def full_output(frames):
        disk_full_at(output)
        return write_parquet(pd.concat(frames, ignore_index=True), output)

    with pytest.raises(NoSpace, match=r"out\.parquet: no space .* \(3 of 3 chunks done are kept\)$"):
        job.run(full_output)
    assert len(list(shard_dir(output).glob("shard-*.parquet"))) == 3 and not output.exists()
    rerun = Job(output)
    rerun.run()
    assert rerun.computed == []
    pd.testing.assert_frame_equal(read_parquet(output), REFERENCE)


def test_an_array_shard_whose_stamp_runs_out_of_space_is_removed_with_it(tmp_path):
    output = tmp_path / "out.npy"
    store = ArrayStore((1,), "int64")
    stamp = shard_dir(output) / "shard-00000.stamp.json"
    with pytest.raises(NoSpace, match=r"shard-00000\.stamp\.json: no space .* \(0 of 3 chunks done are kept\)$"):
        Job(output, lambda number: stamp if number == 0 else None, store).run(lambda arrays: None)
    assert leftovers(tmp_path) == ["out.npy.shards/manifest.json"]  # no array without its stamp
