"""A disk that fills up (ENOSPC) during a job, for real: a small tmpfs mounted (as root) where the results go,
filled with zeros while the job runs. The job stops within seconds with one line naming the file it could not
write, leaves no partial file and no output, keeps its finished checkpoint shards; once space is freed, the
rerun computes only what is missing and writes the table an uninterrupted run writes."""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import pandas as pd
import pytest
import yaml

from helpers import ROOT
from helpers.inotify import MovedInto
from helpers.scale import ForkServer, prompt_table
from helpers.workflow import copy_workflow, snakemake
from xmrc.io import read_parquet

pytestmark = pytest.mark.slow

SIZE = "4m"  # the small file system: room for a job's shards and tables, filled up by `fill`
DETECT_S = 30  # a job must stop within this many seconds of the disk filling up (no hang)
CHUNKS, CHUNK_SIZE = 30, 1
FILL_AFTER = 3  # the generation job's disk fills up once this many checkpoint shards are written


@contextmanager
def small_filesystem(path: Path, size: str = SIZE):
    """A tmpfs of `size` mounted at `path` (made if missing) for the block; skips the test unless root can."""
    if os.geteuid() != 0:
        pytest.skip("disk-full tests mount a small tmpfs and need root")
    if shutil.which("mount") is None or shutil.which("umount") is None:
        pytest.skip("disk-full tests need mount and umount")
    path.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(path)], capture_output=True, text=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs at {path} (disk-full tests): {mounted.stderr.strip()}")
    try:
        yield path
    finally:
        if subprocess.run(["umount", str(path)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(path)], check=True)  # a process still holds a file: detach


def fill(directory: Path) -> Path:
    """Zeros written to `directory/filler` until its file system has no space left (ENOSPC): the file."""
    filler = directory / "filler"
    block = bytes(1 << 16)
    descriptor = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        while True:
            try:
                os.write(descriptor, block)
            except OSError as error:
                if error.errno != errno.ENOSPC:
                    raise
                break
    finally:
        os.close(descriptor)
    assert os.statvfs(directory).f_bavail == 0
    return filler


def partial_files(directory: Path) -> list[Path]:
    return [path for path in directory.rglob("*") if ".partial" in path.name]


def wait_exited(pid: int, timeout: float) -> bool:
    """Whether the process `pid` (another process's child) has exited (a zombie or gone) within `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (FileNotFoundError, ProcessLookupError):
            return True
        if state in ("Z", "X"):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.01)


@pytest.fixture(scope="module")
def server():
    forks = ForkServer()
    yield forks
    forks.close()


@pytest.fixture(scope="module")
def generation_job(server, tiny_models, tmp_path_factory):
    """`argv(out)` of a real generation job (tiny Llama chat model, HF backend, CHUNKS chunks) and the table an
    uninterrupted run of it writes on an ordinary file system."""
    root = tmp_path_factory.mktemp("disk_full_generation")
    weights = str(tiny_models["llama-chat"])
    prompts = root / "prompts.parquet"
    prompt_table(weights).to_parquet(prompts)  # 5 directions x 6 items

    def argv(out: Path) -> list[str]:
        return [
            *("generate-job", "--prompts", str(prompts), "--registry", "config/models.yaml"),
            *("--model", "tiny-llama-chat", "--weights", weights, "--shots", "0", "--format", "v1"),
            *("--backend", "hf", "--dtype", "float32", "--max-new-tokens", "12", "--batch-size", "1"),
            *("--chunk-size", str(CHUNK_SIZE), "--out", str(out)),
        ]

    out = root / "baseline.parquet"
    status = server.wait(server.start(argv(out), root / "baseline.log"))
    assert status == 0, (root / "baseline.log").read_text()[-2000:]
    baseline = read_parquet(out)
    assert len(baseline) == CHUNKS * CHUNK_SIZE
    return argv, out


def test_generation_out_of_space_at_a_shard_stops_in_one_line_and_the_rerun_resumes(server, generation_job, tmp_path):
    argv, baseline_out = generation_job
    baseline = read_parquet(baseline_out)
    started = time.monotonic()
    with small_filesystem(tmp_path / "results") as results:
        out = results / "generations/tiny-llama-chat/0shot-v1.parquet"
        shards = out.with_name(out.name + ".shards")
        log = tmp_path / "full.log"
        pid = server.start(argv(out), log)
        deadline = time.monotonic() + 120
        while not (shards / f"shard-{FILL_AFTER - 1:05d}.parquet").exists():  # the first shards are written...
            assert time.monotonic() < deadline and not wait_exited(pid, 0), log.read_text()[-2000:]
            time.sleep(0.005)
        filler = fill(results)  # ...then the disk fills up: a later shard's write fails
        filled = time.monotonic()
        exited = wait_exited(pid, DETECT_S)
        detect_s = time.monotonic() - filled
        if not exited:
            os.kill(pid, 9)
        status = server.wait(pid)
        print(f"generation: seconds to detect (fill -> exit) {detect_s:.2f}")
        assert exited, f"the job still ran {DETECT_S} s after the disk filled up: a hang"
        assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 2, log.read_text()[-2000:]

        kept = sorted(path.name for path in shards.glob("shard-*"))
        done = len(kept)
        assert kept == [f"shard-{number:05d}.parquet" for number in range(done)] and FILL_AFTER <= done < CHUNKS, kept
        failed = shards / f"shard-{done:05d}.parquet"
        last = log.read_text().splitlines()[-1]
        assert last == (
            f"xmrc: error: {failed}: no space left on device, nothing partial kept; "
            f"free space and rerun ({done} of {CHUNKS} chunks done are kept)"
        )
        assert "Traceback" not in log.read_text()
        assert partial_files(results) == [] and not out.exists()
        for name in kept:  # the finished shards are whole
            assert len(read_parquet(shards / name)) == CHUNK_SIZE

        filler.unlink()  # space freed: the rerun computes only the chunks not done
        moved = MovedInto(shards)
        rerun_log = tmp_path / "rerun.log"
        status = server.wait(server.start(argv(out), rerun_log))
        assert status == 0, rerun_log.read_text()[-2000:]
        written = moved.names()
        assert sorted(written) == [f"shard-{number:05d}.parquet" for number in range(done, CHUNKS)]
        resumed = read_parquet(out)
        assert len(resumed) == len(baseline) == CHUNKS * CHUNK_SIZE
        pd.testing.assert_frame_equal(resumed, baseline)
        assert not shards.exists() and partial_files(results) == []
    print(f"generation: {done} of {CHUNKS} chunks kept, {CHUNKS - done} recomputed; {time.monotonic() - started:.1f} s")


def xmrc_process(*args, cwd: Path = ROOT) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "xmrc", *map(str, args)],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={"PYTHONPATH": str(ROOT / "src"), "PATH": "/usr/bin:/bin", "HOME": "/tmp"},
    )


def test_scoring_out_of_space_stops_in_one_line_and_the_rerun_writes_the_same_table(generation_job, tmp_path):
    _, generations = generation_job
    baseline_out = tmp_path / "baseline_scores.parquet"
    baseline = xmrc_process("score", "--generations", generations, "--normalization", "mlqa", "--out", baseline_out)
    assert baseline.wait(timeout=120) == 0, baseline.stderr.read()
    with small_filesystem(tmp_path / "results") as results:
        source = results / "generations/tiny-llama-chat/0shot-v1.parquet"
        source.parent.mkdir(parents=True)
        shutil.copy(generations, source)
        out = results / "scores/tiny-llama-chat/0shot-v1.parquet"
        argv = ("score", "--generations", source, "--normalization", "mlqa", "--out", out)
        job = xmrc_process(*argv)
        filler = fill(results)  # while the job starts and reads: its write comes after
        filled = time.monotonic()
        try:
            _, stderr = job.communicate(timeout=DETECT_S)
        except subprocess.TimeoutExpired:
            job.kill()
            job.communicate()
            pytest.fail(f"the job still ran {DETECT_S} s after the disk filled up: a hang")
        print(f"scoring: seconds to detect (fill -> exit, start-up included) {time.monotonic() - filled:.2f}")
        assert job.returncode == 2, stderr
        assert stderr.splitlines() == [
            f"xmrc: error: {out}: no space left on device, nothing partial kept; free space and rerun"
        ]
        assert partial_files(results) == [] and not out.exists()

        filler.unlink()
        rerun = xmrc_process(*argv)
        assert rerun.wait(timeout=120) == 0, rerun.stderr.read()
        rescored = read_parquet(out)
        assert len(rescored) == CHUNKS * CHUNK_SIZE
        pd.testing.assert_frame_equal(rescored, read_parquet(baseline_out))


def test_snakemake_reports_the_failed_job_and_the_rerun_after_freeing_completes(tmp_path):
    checkout = copy_workflow(tmp_path / "checkout")
    smoke = yaml.safe_load((checkout / "config/smoke.yaml").read_text())
    stem = "tiny-llama-chat/0shot-v1"
    results = f"results/{smoke['run']}"
    # the smoke run, smaller: one item per direction, two new tokens
    small = ("--config", 'data={"max_items": 1}', 'generation={"max_new_tokens": 2}')
    options = ("--configfile", "config/smoke.yaml", *small, "--cores", "2")
    with small_filesystem(checkout / "results"):
        made = snakemake(*options, f"{results}/generations/{stem}.parquet", cwd=checkout, timeout=300)
        assert made.returncode == 0, made.stderr[-3000:]
        filler = fill(checkout / "results")
        failed = snakemake(*options, f"{results}/scores/{stem}.parquet", cwd=checkout, timeout=300)
        assert failed.returncode != 0
        assert "Error in rule score" in failed.stderr and _jobs_run(failed) == {"score"}, failed.stderr[-3000:]
        out = f"{results}/scores/{stem}.parquet"
        log = (checkout / f"logs/{smoke['run']}/scores/{stem}.log").read_text()
        assert log.splitlines() == [
            f"xmrc: error: {out}: no space left on device, nothing partial kept; free space and rerun"
        ]
        assert partial_files(checkout / "results") == [] and not (checkout / out).exists()

        filler.unlink()
        rerun = snakemake(*options, out, cwd=checkout, timeout=300)
        assert rerun.returncode == 0, rerun.stderr[-3000:]
        assert _jobs_run(rerun) == {"score"}, rerun.stderr[-3000:]  # only the failed job
        # the table of an uninterrupted scoring of the same generations, on an ordinary file system
        uninterrupted = tmp_path / "scores.parquet"
        generations = checkout / f"{results}/generations/{stem}.parquet"
        scored = xmrc_process("score", "--generations", generations, "--normalization", "mlqa", "--out", uninterrupted)
        assert scored.wait(timeout=120) == 0, scored.stderr.read()
        table = read_parquet(checkout / out)
        assert len(table) == 23  # directions, one item each
        pd.testing.assert_frame_equal(table, read_parquet(uninterrupted))


def _jobs_run(result: subprocess.CompletedProcess) -> set[str]:
    """The rules of the jobs a Snakemake run started (its "rule NAME:" lines)."""
    return {
        line.split()[-1].rstrip(":")
        for line in (result.stdout + result.stderr).splitlines()
        if line.startswith(("rule ", "localrule "))
    }
