"""Prefix order and shares; what generation, finetune and layer jobs ask the scheduler for; which registry
fields re-run jobs."""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import pytest
from helpers import ROOT
from helpers.scale import prompt_table

from xmrc.hub import scheduling
from xmrc.backends.prefix import common_prefix_length, prefix_order, prefix_stats, shared_prefix_share
from xmrc.config import Registry, load_config

REGISTRY = Registry.load(ROOT / "config/models.yaml")
PAPER = load_config(ROOT / "config/config.yaml")["backends"]


def test_prefix_order_puts_shared_prefixes_next_to_each_other():
    prompts = ["ctx A q1", "ctx B q1", "ctx A q2", "ctx B q2", "ctx A q3"]
    order = prefix_order(prompts)
    assert [prompts[i] for i in order] == ["ctx A q1", "ctx A q2", "ctx A q3", "ctx B q1", "ctx B q2"]
    assert shared_prefix_share([prompts[i] for i in order]) > shared_prefix_share(prompts)


def test_prefix_stats_without_and_with_a_tokenizer():
    prompts = ["abX", "zz", "abY"]
    assert prefix_stats(prompts) == {"n": 3, "chars_table_order": 0.0, "chars_prefix_order": 2 / 8}

    def characters(texts, add_special_tokens):
        return {"input_ids": [["<s>"] * add_special_tokens + list(text) for text in texts]}

    stats = prefix_stats(prompts, templated=True, tokenizer=characters)
    assert stats["tokens_prefix_order"] == 2 / 8 and stats["prompt_tokens"] == 8
    assert stats["tokens_prefix_order_16_blocks"] == 0.0


def test_shared_prefix_share_by_hand():
    assert common_prefix_length([1, 2, 3], [1, 2, 4]) == 2
    # 0 + 2 + 3 shared of 4 + 4 + 3 elements
    assert shared_prefix_share([[1, 2, 3, 4], [1, 2, 9, 9], [1, 2, 9]]) == pytest.approx(5 / 11)
    assert shared_prefix_share([[1, 2, 3, 4], [1, 2, 3, 5]], block_size=2) == pytest.approx(2 / 8)
    assert shared_prefix_share([]) == 0.0 and shared_prefix_share([[]]) == 0.0


def test_prefix_order_beats_table_order_on_real_prompts():
    table = prompt_table(None, languages=("en", "de", "zh", "ar"), shots=2, max_items=12)
    texts = table["prompt"].tolist()
    ordered = [texts[i] for i in prefix_order(texts)]
    assert shared_prefix_share(ordered) >= shared_prefix_share(texts) > 0.5


@pytest.mark.parametrize("key, gpus", [("llama-3.1-8b", 1), ("gemma-2-it-9b", 1), ("qwen-2.5-7b", 1),
                                        ("llama-3.1-70b", 4), ("qwen-2.5-instruct-72b", 4), ("gpt-4o", 0),
                                        ("deepseek-v3", 0), ("tiny-llama-chat", 0)])
def test_gpus_per_model(key, gpus):
    assert scheduling.job_gpus(REGISTRY.get(key)) == gpus


def test_api_models_never_ask_for_gpus_or_gpu_types():
    for model in REGISTRY.select("main"):
        if model.backend == "api":
            assert scheduling.job_gpus(model) == 0
            assert scheduling.job_gpu_model(model, {**PAPER, "gpu_model": "a100"}) == ""
            assert scheduling.job_mem_mb(model, PAPER) == 2048


def test_memory_and_runtime_grow_with_size_and_attempt():
    small, large = REGISTRY.get("llama-3.1-8b"), REGISTRY.get("llama-3.1-70b")
    assert scheduling.job_mem_mb(small, PAPER) < scheduling.job_mem_mb(large, PAPER)
    assert scheduling.job_mem_mb(small, PAPER, attempt=3) == 2 * scheduling.job_mem_mb(small, PAPER)
    assert scheduling.job_runtime_min(large, PAPER, attempt=2) == 2 * scheduling.job_runtime_min(large, PAPER)
    pinned = dataclasses.replace(small, mem_gb=100, runtime_min=30)
    assert scheduling.job_mem_mb(pinned, PAPER) == 102400 and scheduling.job_runtime_min(pinned, PAPER) == 30
    assert scheduling.job_gpu_model(small, {**PAPER, "gpu_model": "h100"}) == "h100"


def test_finetune_resources_come_from_its_registry_block():
    def resources(model):
        return (scheduling.finetune_gpus(model), scheduling.finetune_threads(model),
                scheduling.finetune_mem_mb(model), scheduling.finetune_runtime_min(model))

    assert resources(REGISTRY.get("llama-3.1-tuned-8b")) == (8, 32, 256 * 1024, 24 * 60)  # 4 workers per GPU
    assert resources(REGISTRY.get("tiny-llama-tulu-sft")) == (0, 1, 4 * 1024, 60)  # on CPU: one worker
    defaults = dataclasses.replace(REGISTRY.get("tiny-llama-tulu-sft"), finetune={"method": "full"})
    assert resources(defaults) == (1, 4, 64 * 1024, 24 * 60)


def test_layer_extraction_memory_grows_with_size():
    assert scheduling.layer_mem_mb(REGISTRY.get("tiny-llama-base")) == 4096
    assert scheduling.layer_mem_mb(REGISTRY.get("llama-3.1-8b")) == 4096 + 8 * 1024


def test_entry_digest_ignores_scheduling_fields_only():
    model = REGISTRY.get("llama-3.1-8b")
    digest = scheduling.entry_digest(model)
    assert scheduling.entry_digest(dataclasses.replace(model, gpus=8, mem_gb=300, runtime_min=5)) == digest
    assert scheduling.entry_digest(dataclasses.replace(model, paper_name="Another-Name")) == digest
    assert scheduling.entry_digest(dataclasses.replace(model, revision="0123abc")) != digest
    assert scheduling.entry_digest(dataclasses.replace(model, chat_template=True)) != digest


def test_cli_prefix_stats(tmp_path, tiny_models):
    prompts = tmp_path / "p.parquet"
    prompt_table(tiny_models["qwen2-chat"], shots=2, max_items=3).to_parquet(prompts)
    result = subprocess.run([sys.executable, "-m", "xmrc", "prefix-stats", "--prompts", str(prompts),
                             "--tokenizer", tiny_models["qwen2-chat"], "--out", str(tmp_path / "s.csv")],
                            capture_output=True, text=True, env={"PYTHONPATH": str(ROOT / "src")})
    assert result.returncode == 0, result.stderr
    import pandas as pd

    stats = pd.read_csv(tmp_path / "s.csv")
    assert stats.loc[0, "n"] == 15 and 0.5 < stats.loc[0, "tokens_prefix_order"] < 1
    missing = subprocess.run([sys.executable, "-m", "xmrc", "prefix-stats", "--prompts", str(tmp_path / "no")],
                             capture_output=True, text=True, env={"PYTHONPATH": str(ROOT / "src")})
    assert missing.returncode == 2 and "file not found" in missing.stderr


def test_gpu_claims_do_not_overlap_and_respect_an_existing_allocation(tmp_path):
    import multiprocessing

    from xmrc.hub.gpus import claim_gpus

    first: dict = {}
    assert claim_gpus(2, total=3, lock_dir=tmp_path, environ=first) == [0, 1]
    assert first["CUDA_VISIBLE_DEVICES"] == "0,1"
    # another process sees devices 0 and 1 taken; flock is per open file, so test from a child process
    context = multiprocessing.get_context("spawn")
    with context.Pool(1) as pool:
        assert pool.apply(claim_gpus, (1,), {"total": 3, "lock_dir": tmp_path, "environ": {}}) == [2]
        assert pool.apply(claim_gpus, (2,), {"total": 3, "lock_dir": tmp_path, "environ": {}, "wait_s": 0}) is None
    assert claim_gpus(1, total=3, lock_dir=tmp_path, environ={"SLURM_JOB_ID": "7"}) is None
    assert claim_gpus(1, total=3, lock_dir=tmp_path, environ={"CUDA_VISIBLE_DEVICES": "1"}) is None
    assert claim_gpus(0, total=3, lock_dir=tmp_path, environ={}) is None
