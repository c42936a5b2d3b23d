"""kill -9 at random moments of a real generation job, then a re-run: exactly the rows of an uninterrupted run."""

from __future__ import annotations

import os
import random
import signal
import time

import pandas as pd
import pytest
from helpers.scale import ForkServer, prompt_table

TRIALS = 10


@pytest.fixture(scope="module")
def server():
    forks = ForkServer()
    yield forks
    forks.close()


def test_sigkill_at_random_moments_then_resume_gives_the_uninterrupted_table(server, tiny_models, tmp_path):
    weights = tiny_models["llama-chat"]
    prompts = tmp_path / "prompts.parquet"
    prompt_table(weights).to_parquet(prompts)
    chunks = 10

    def argv(out):
        return ["generate-job", "--prompts", str(prompts), "--registry", "config/models.yaml",
                "--model", "tiny-llama-chat", "--weights", weights, "--shots", "0", "--format", "v1",
                "--backend", "hf", "--dtype", "float32", "--max-new-tokens", "6", "--chunk-size", "3",
                "--out", str(out)]

    def run(out, log):
        status = server.wait(server.start(argv(out), log))
        assert status == 0, log.read_text()[-2000:]

    baseline_out = tmp_path / "baseline.parquet"
    started = time.monotonic()
    run(baseline_out, tmp_path / "baseline.log")
    duration = time.monotonic() - started
    baseline = pd.read_parquet(baseline_out)
    assert len(baseline) == 30 and not baseline.duplicated(["id", "context_lang", "question_lang"]).any()

    rng = random.Random(3)
    interrupted_mid_job = 0
    for trial in range(TRIALS):
        out = tmp_path / f"trial{trial}" / "generations.parquet"
        out.parent.mkdir()
        shard_dir = out.with_name(out.name + ".shards")
        # stratified over the run: every part of the job (loading, generating, writing a shard) gets hit
        kills = [duration * (trial + rng.random()) / TRIALS]
        if trial % 2:
            kills.append(duration * rng.random())  # kill the resumed run as well
        for number, delay in enumerate(kills):
            pid = server.start(argv(out), out.parent / f"killed{number}.log")
            time.sleep(delay)
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            server.wait(pid)
            shards = len(list(shard_dir.glob("shard-*.parquet"))) if shard_dir.exists() else 0
            interrupted_mid_job += 0 < shards < chunks and not out.exists()
        run(out, out.parent / "resumed.log")
        resumed = pd.read_parquet(out)
        pd.testing.assert_frame_equal(resumed, baseline)
        assert not shard_dir.exists()
    assert interrupted_mid_job >= 3, "too few kills landed between the first and the last shard"
