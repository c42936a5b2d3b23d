"""The checkpoint loop of long jobs: folders resumed only by the same job, shards reused only when they pass
every check."""

from argparse import Namespace

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from helpers.jobs import rewrite_shard, shards_kept
from xmrc.jobs import (
    MANIFEST,
    ArrayStore,
    Checkpoint,
    ParquetStore,
    StoreGroup,
    close_shard_dir,
    fingerprint,
    job_settings,
    open_shard_dir,
    run_sharded,
    shard_dir,
)

ITEMS = ["alpha", "beta", "gamma", "delta", "epsilon"]
TABLE = ParquetStore(["item", "length"], key_columns=["item"])


class Job:
    """A job over ITEMS (the length of each name) that counts the chunks it computes and can die after some."""

    def __init__(self, die_after: int | None = None):
        self.computed, self.die_after = [], die_after

    def compute(self, chunk):
        if self.die_after is not None and len(self.computed) == self.die_after:
            raise KeyboardInterrupt
        self.computed.append(list(chunk))
        return pd.DataFrame({"item": list(chunk), "length": [len(item) for item in chunk]})

    def run(self, output, chunk_size=2, settings=None, store=TABLE, items=ITEMS, write_output=None):
        checkpoint = Checkpoint(output, settings or {"job": "lengths"}, chunk_size, "lengths", progress=False)
        write_output = write_output or (lambda frames: pd.concat(frames, ignore_index=True))
        return run_sharded(items, items, self.compute, store, write_output, checkpoint)


def killed(output, chunks_done, **options):
    with pytest.raises(KeyboardInterrupt):
        Job(die_after=chunks_done).run(output, **options)
    return sorted(shard_dir(output).glob("shard-*.parquet"))


REFERENCE = pd.DataFrame({"item": ITEMS, "length": [len(item) for item in ITEMS]})


def test_a_killed_job_resumes_from_its_shards_and_writes_what_an_uninterrupted_one_writes(tmp_path):
    output = tmp_path / "out.parquet"
    assert [p.name for p in killed(output, 2)] == ["shard-00000.parquet", "shard-00001.parquet"]
    resumed = Job()
    pd.testing.assert_frame_equal(resumed.run(output), REFERENCE)
    assert resumed.computed == [["epsilon"]] and not shard_dir(output).exists()
    pd.testing.assert_frame_equal(Job().run(tmp_path / "fresh.parquet"), REFERENCE)


@pytest.mark.parametrize(
    "damage, warning",
    [
        ("other_chunk", "written by another job or chunk"),
        ("other_rows", "rows do not match the chunk's items"),
        ("fewer_rows", "holds 1 rows"),
        ("other_columns", "lacks column(s) length"),
        ("no_stamp", "written by another job or chunk"),
        ("truncated", "unreadable"),
    ],
)
def test_a_shard_that_fails_a_check_is_recomputed_with_a_warning(damage, warning, tmp_path, capsys):
    output = tmp_path / "out.parquet"
    first, victim = killed(output, 2)
    frame = pq.read_table(victim).to_pandas()
    if damage == "other_chunk":
        victim.write_bytes(first.read_bytes())
    elif damage == "other_rows":
        rewrite_shard(victim, frame.assign(item=["x", "y"]))
    elif damage == "fewer_rows":
        rewrite_shard(victim, frame.iloc[:1])
    elif damage == "other_columns":
        rewrite_shard(victim, frame.drop(columns="length"))
    elif damage == "no_stamp":
        frame.to_parquet(victim)
    elif damage == "truncated":
        victim.write_bytes(victim.read_bytes()[:-20])
    capsys.readouterr()
    resumed = Job()
    pd.testing.assert_frame_equal(resumed.run(output), REFERENCE)
    assert resumed.computed == [["gamma", "delta"], ["epsilon"]]  # the first shard alone was reused
    err = capsys.readouterr().err
    assert f"{victim.name}: {warning}" in err and err.startswith("xmrc: warning: ")


def test_shards_of_another_chunk_layout_are_recomputed(tmp_path, capsys):
    output = tmp_path / "out.parquet"
    killed(output, 1, chunk_size=3)  # same settings and items: the folder is kept, its shard is not this chunk's
    resumed = Job()
    pd.testing.assert_frame_equal(resumed.run(output, chunk_size=2), REFERENCE)
    assert len(resumed.computed) == 3 and "written by another job or chunk" in capsys.readouterr().err


@pytest.mark.parametrize("change", [{"settings": {"job": "other"}}, {"items": ITEMS[::-1]}])
def test_another_job_discards_the_folder_with_a_warning(change, tmp_path, capsys):
    output = tmp_path / "out.parquet"
    killed(output, 2)
    resumed = Job()
    resumed.run(output, **change)
    assert len(resumed.computed) == 3 and "shards of another job" in capsys.readouterr().err


def test_partial_writes_are_swept_and_never_read(tmp_path):
    output = tmp_path / "out.parquet"
    shards = killed(output, 1)
    (shards[0].parent / "shard-00001.parquet.partial").write_bytes(b"half a write")
    resumed = Job()
    pd.testing.assert_frame_equal(resumed.run(output), REFERENCE)
    assert resumed.computed == [["gamma", "delta"], ["epsilon"]]


class Arrays(Job):
    def compute(self, chunk):
        super().compute(chunk)
        return np.array([[len(item), 0.5] for item in chunk], dtype=np.float16)


def run_arrays(job, output):
    """The shards' arrays, copied from their memory maps before the folder goes."""
    return job.run(
        output, store=ArrayStore((2,), "float16"), write_output=lambda shards: [np.array(shard) for shard in shards]
    )


@pytest.mark.parametrize("damage", ["shape", "dtype", "stamp", "truncated", "bytes_changed"])
def test_array_shards_are_checked_for_stamp_shape_and_dtype(damage, tmp_path, capsys, monkeypatch):
    output = tmp_path / "out.npy"
    with shards_kept(monkeypatch):
        reference = run_arrays(Arrays(), output)
    folder = shard_dir(output)
    victim = folder / "shard-00001.npy"
    if damage == "shape":
        np.save(victim, np.zeros((2, 3), dtype=np.float16))
    elif damage == "dtype":
        np.save(victim, np.zeros((2, 2), dtype=np.float32))
    elif damage == "stamp":
        (folder / "shard-00001.stamp.json").unlink()
    elif damage == "truncated":
        victim.write_bytes(victim.read_bytes()[:-3])
    elif damage == "bytes_changed":  # same size, same header: only the stamp's digest of the bytes tells
        data = bytearray(victim.read_bytes())
        data[-1] ^= 0x80
        victim.write_bytes(bytes(data))
    resumed = Arrays()
    shards = run_arrays(resumed, output)
    assert resumed.computed == [["gamma", "delta"]] and f"{victim.name}:" in capsys.readouterr().err
    for got, expected in zip(shards, reference):
        np.testing.assert_array_equal(got, expected)


def test_a_group_of_stores_keeps_every_value_of_a_chunk(tmp_path):
    store = StoreGroup((TABLE, ParquetStore(["item"], rows_per_item=None, name="examples")))

    class Pair(Job):
        def compute(self, chunk):
            return super().compute(chunk), pd.DataFrame({"item": [i for i in chunk if "l" in i]})

    output = tmp_path / "out.parquet"
    with pytest.raises(KeyboardInterrupt):
        Pair(die_after=1).run(output, store=store)
    assert sorted(p.name for p in shard_dir(output).glob("shard-*")) == [
        "shard-00000.examples.parquet",
        "shard-00000.parquet",
    ]
    resumed = Pair()
    checkpoint = Checkpoint(output, {"job": "lengths"}, 2, "pairs", progress=False)
    results = run_sharded(ITEMS, ITEMS, resumed.compute, store, list, checkpoint)
    assert len(resumed.computed) == 2
    assert [examples["item"].tolist() for _, examples in results] == [["alpha"], ["delta"], ["epsilon"]]


def test_same_job_resumes_other_job_discards(tmp_path, capsys):
    output = tmp_path / "out.parquet"
    job = fingerprint({"model": "a", "dtype": "bfloat16"}, ["i1", "i2"])
    folder = open_shard_dir(output, job, {"chunks": 2})
    assert folder == shard_dir(output) == tmp_path / "out.parquet.shards" and (folder / MANIFEST).exists()
    (folder / "shard-00000.parquet").write_text("done")
    (folder / "shard-00001.parquet.partial").write_text("half")  # a write the kill interrupted
    (folder / "shard-00002.npy.partial.npy").write_text("half")

    assert open_shard_dir(output, job) == folder
    assert sorted(p.name for p in folder.iterdir()) == [MANIFEST, "shard-00000.parquet"]
    assert capsys.readouterr().err == ""

    for other in (
        fingerprint({"model": "a", "dtype": "float32"}, ["i1", "i2"]),  # another setting
        fingerprint({"model": "a", "dtype": "bfloat16"}, ["i2", "i1"]),
    ):  # other items (order)
        (folder / "shard-00000.parquet").write_text("done")
        assert other != job
        open_shard_dir(output, other)
        assert not (folder / "shard-00000.parquet").exists()
        assert "shards of another job" in capsys.readouterr().err
        open_shard_dir(output, job)  # back to the first job: its manifest again

    close_shard_dir(output)
    assert not folder.exists()


def test_unreadable_manifest_counts_as_another_job(tmp_path, capsys):
    output = tmp_path / "out.parquet"
    folder = shard_dir(output)
    folder.mkdir()
    (folder / MANIFEST).write_text("{truncated")
    (folder / "shard-00000.parquet").write_text("x")
    open_shard_dir(output, fingerprint({}, []))
    assert not (folder / "shard-00000.parquet").exists() and "discarded" in capsys.readouterr().err


def test_job_settings_are_the_arguments_without_the_handler():
    args = Namespace(weights="w", dtype="bfloat16", func=print, batch_size=4)
    assert job_settings(args) == {"batch_size": 4, "dtype": "bfloat16", "weights": "w"}
    assert fingerprint(job_settings(args), []) == fingerprint(job_settings(Namespace(**vars(args))), [])
