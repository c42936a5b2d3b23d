"""Checkpoint folders: resumed only by the same job (settings and items), discarded with a warning otherwise."""

from argparse import Namespace

from xmrc.jobs import MANIFEST, close_shard_dir, fingerprint, job_settings, open_shard_dir, shard_dir


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

    for other in (fingerprint({"model": "a", "dtype": "float32"}, ["i1", "i2"]),   # another setting
                  fingerprint({"model": "a", "dtype": "bfloat16"}, ["i2", "i1"])):  # other items (order)
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
