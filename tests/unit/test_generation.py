"""Resumable generation: shard validation, stale and corrupt shards, order, recorded settings."""

from __future__ import annotations

import pandas as pd
import pyarrow.parquet as pq
import pytest

from helpers.jobs import killed_then_resumed
from helpers.scale import prompt_table
from xmrc.backends.hf import HFBackend
from xmrc.exceptions import XmrcError
from xmrc.generation import generation_record, run_generation

SETTING = dict(model="Tiny-Llama-Chat", shots=0, prompt_format="v1", max_new_tokens=4, progress=False)


class Recording:
    """The real HF backend, remembering which prompts each call received (in order)."""

    def __init__(self, backend):
        self.backend, self.calls = backend, []
        self.name = backend.name

    def describe(self):
        return self.backend.describe()

    def tokenize(self, prompts, templated):
        return self.backend.tokenize(prompts, templated)

    def generate(self, prompts, *args, **kwargs):
        self.calls.append(list(prompts))
        return self.backend.generate(prompts, *args, **kwargs)


@pytest.fixture(scope="module")
def backend(tiny_models):
    return HFBackend(tiny_models["llama-chat"], dtype="float32", batch_size=8, progress=False)


@pytest.fixture(scope="module")
def prompts(tiny_models):
    return prompt_table(tiny_models["llama-chat"], max_items=4)  # 20 prompts


@pytest.fixture(scope="module")
def reference(backend, prompts, tmp_path_factory):
    out = tmp_path_factory.mktemp("reference") / "generations.parquet"
    return run_generation(prompts, backend, out, chunk_size=6, **SETTING)


def test_output_in_table_order_while_prompts_run_in_prefix_order(backend, prompts, reference, tmp_path):
    recording = Recording(backend)
    result = run_generation(prompts, recording, tmp_path / "g.parquet", chunk_size=6, **SETTING)
    sent = [p for call in recording.calls for p in call]
    assert sent == sorted(prompts["prompt"]) and sent != prompts["prompt"].tolist()
    assert [len(c) for c in recording.calls] == [6, 6, 6, 2]
    assert (
        result[["id", "context_lang", "question_lang"]].values.tolist()
        == prompts[["id", "context_lang", "question_lang"]].values.tolist()
    )
    pd.testing.assert_frame_equal(result, reference)


def test_record_holds_backend_versions_settings_and_prefix_shares(reference, tmp_path, backend, prompts):
    out = tmp_path / "g.parquet"
    run_generation(prompts, backend, out, chunk_size=6, **SETTING)
    record = generation_record(out)
    assert record["backend"]["name"] == "hf" and record["backend"]["transformers"]
    assert record["backend"]["dtype"] == "float32" and record["max_new_tokens"] == 4
    assert "served_models" not in record  # a local backend serves what it loaded (API models: test_api.py)
    shares = record["prefix_share"]
    assert 0 < shares["table_order"]["tokens"] <= shares["prefix_order"]["tokens"] < 1
    assert shares["prefix_order"]["tokens_16_blocks"] <= shares["prefix_order"]["tokens"]


def _partial_run(prompts, backend, out, chunks_done):
    """Shards of a job that was killed after `chunks_done` chunks: run a prefix of the chunks for real."""

    class Stop(Exception):
        pass

    class Dying(Recording):
        def generate(self, prompts_, *args, **kwargs):
            if len(self.calls) == chunks_done:
                raise Stop
            return super().generate(prompts_, *args, **kwargs)

    with pytest.raises(Stop):
        run_generation(prompts, Dying(backend), out, chunk_size=6, **SETTING)
    return sorted(out.with_name(out.name + ".shards").glob("shard-*.parquet"))


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty", "other_rows", "other_job"])
def test_damaged_shard_is_detected_and_regenerated(damage, backend, prompts, reference, tmp_path, capsys):
    out = tmp_path / "g.parquet"
    shards = _partial_run(prompts, backend, out, chunks_done=3)
    assert len(shards) == 3
    victim = shards[1]
    if damage == "truncate":
        victim.write_bytes(victim.read_bytes()[:-40])
    elif damage == "garbage":
        victim.write_bytes(b"PAR1 this is not parquet")
    elif damage == "empty":
        victim.write_bytes(b"")
    elif damage == "other_rows":  # right metadata, wrong content (e.g. a row lost or duplicated)
        table = pq.read_table(victim)
        pq.write_table(table.take([0, 0, 1, 2, 3, 4]), victim)  # one row twice, one lost
    elif damage == "other_job":  # a valid shard written by another chunk
        victim.write_bytes(shards[0].read_bytes())
    capsys.readouterr()
    recording = Recording(backend)
    result = run_generation(prompts, recording, out, chunk_size=6, **SETTING)
    assert f"{victim.name}:" in capsys.readouterr().err
    assert len(recording.calls) == 2  # the damaged shard and the one never written
    pd.testing.assert_frame_equal(result, reference)


def test_shards_of_another_prompt_table_are_discarded(backend, prompts, reference, tmp_path, capsys):
    out = tmp_path / "g.parquet"
    other = prompts.copy()
    other["prompt"] = other["prompt"].str.replace("Question:", "Q:")
    _partial_run(other, backend, out, chunks_done=2)
    recording = Recording(backend)
    result = run_generation(prompts, recording, out, chunk_size=6, **SETTING)
    assert "discarded" in capsys.readouterr().err
    assert len(recording.calls) == 4
    pd.testing.assert_frame_equal(result, reference)


def test_a_changed_setting_discards_shards(backend, prompts, tmp_path):
    out = tmp_path / "g.parquet"
    _partial_run(prompts, backend, out, chunks_done=2)
    recording = Recording(backend)
    run_generation(prompts, recording, out, chunk_size=6, **{**SETTING, "max_new_tokens": 3})
    assert len(recording.calls) == 4


def test_resume_uses_intact_shards_and_leftover_partial_files(backend, prompts, reference, tmp_path):
    out = tmp_path / "g.parquet"
    shards = _partial_run(prompts, backend, out, chunks_done=2)
    (shards[0].parent / "shard-00002.parquet.partial").write_bytes(b"half a write")
    recording = Recording(backend)
    result = run_generation(prompts, recording, out, chunk_size=6, **SETTING)
    assert len(recording.calls) == 2
    pd.testing.assert_frame_equal(result, reference)
    assert not shards[0].parent.exists()


def test_job_killed_after_a_chunk_resumes_through_the_checkpoint_loop(
    backend, prompts, reference, tmp_path, monkeypatch
):
    out = tmp_path / "g.parquet"
    result, computed = killed_then_resumed(
        monkeypatch, "xmrc.generation", out, lambda: run_generation(prompts, backend, out, chunk_size=6, **SETTING)
    )
    assert computed == [6, 6, 2]  # the first chunk came from its shard
    pd.testing.assert_frame_equal(result, reference)
    pd.testing.assert_frame_equal(pq.read_table(out).to_pandas(), reference)


def test_duplicated_prompt_keys_are_an_error(backend, prompts, tmp_path):
    doubled = pd.concat([prompts, prompts.iloc[:1]], ignore_index=True)
    with pytest.raises(XmrcError, match="duplicated prompt key"):
        run_generation(doubled, backend, tmp_path / "g.parquet", **SETTING)


def test_generation_record_errors(tmp_path):
    plain = tmp_path / "plain.parquet"
    pd.DataFrame({"a": [1]}).to_parquet(plain)
    with pytest.raises(XmrcError, match=r"no xmrc.generation metadata"):
        generation_record(plain)
    with pytest.raises(XmrcError, match="file not found"):
        generation_record(tmp_path / "missing.parquet")
