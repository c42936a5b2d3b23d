"""kill -9 at random moments of a real generation job, then a re-run: exactly the rows of an uninterrupted run."""

from __future__ import annotations

import os
import random
import signal
import time

import pandas as pd
import pytest

from helpers.scale import ForkServer, prompt_table
from xmrc.io import read_parquet

TRIALS = 10


def _shards(shard_dir) -> int:
    return len(list(shard_dir.glob("shard-*.parquet"))) if shard_dir.exists() else 0


@pytest.fixture(scope="module")
def server():
    forks = ForkServer()
    yield forks
    forks.close()


def test_sigkill_at_random_moments_then_resume_gives_the_uninterrupted_table(server, tiny_models, tmp_path):
    weights = str(tiny_models["llama-chat"])
    prompts = tmp_path / "prompts.parquet"
    prompt_table(weights).to_parquet(prompts)
    chunks = 10

    def argv(out):
        return [
            "generate-job",
            "--prompts",
            str(prompts),
            "--registry",
            "config/models.yaml",
            "--model",
            "tiny-llama-chat",
            "--weights",
            weights,
            "--shots",
            "0",
            "--format",
            "v1",
            "--backend",
            "hf",
            "--dtype",
            "float32",
            "--max-new-tokens",
            "6",
            "--chunk-size",
            "3",
            "--out",
            str(out),
        ]

    def run(out, log):
        status = server.wait(server.start(argv(out), log))
        assert status == 0, log.read_text()[-2000:]

    baseline_out = tmp_path / "baseline.parquet"
    started = time.monotonic()
    run(baseline_out, tmp_path / "baseline.log")
    duration = time.monotonic() - started
    baseline = read_parquet(baseline_out)
    assert len(baseline) == 30 and not baseline.duplicated(["id", "context_lang", "question_lang"]).any()

    rng = random.Random(3)
    interrupted_mid_job = 0
    for trial in range(TRIALS):
        out = tmp_path / f"trial{trial}" / "generations.parquet"
        out.parent.mkdir()
        shard_dir = out.with_name(out.name + ".shards")
        # even trials: a moment stratified over the whole run (loading, generating, writing, assembling);
        # odd trials: a random moment inside a random shard (after k shards exist), then a kill of the
        # resumed run as well
        plans = (
            [("time", duration * (trial + rng.random()) / TRIALS)]
            if trial % 2 == 0
            else [("shards", rng.randint(1, chunks - 2)), ("shards", rng.randint(1, chunks - 1))]
        )
        for number, (kind, value) in enumerate(plans):
            pid = server.start(argv(out), out.parent / f"killed{number}.log")
            if kind == "time":
                time.sleep(value)
            else:
                deadline = time.monotonic() + 2 * duration
                while _shards(shard_dir) < value and time.monotonic() < deadline:
                    time.sleep(0.01)
                time.sleep(rng.random() * duration / chunks)
            os.kill(pid, signal.SIGKILL)
            server.wait(pid)
            interrupted_mid_job += 0 < _shards(shard_dir) < chunks and not out.exists()
        run(out, out.parent / "resumed.log")
        resumed = read_parquet(out)
        pd.testing.assert_frame_equal(resumed, baseline)
        assert not shard_dir.exists()
    assert interrupted_mid_job >= TRIALS // 2, "too few kills landed between the first and the last shard"
