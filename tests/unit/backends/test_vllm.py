"""The vLLM backend's plain functions: request building, settings (CPU and GPU), the continuation loop,
tokenisation (no double BOS), the one-line error where vllm is not installed (the main environment), and the
objects xmrc builds checked against the vLLM environment's vLLM (tests/helpers/vllm_contract.py; `make test`
builds that environment). tests/workflow/test_real_vllm.py runs the engine on a real model."""

from __future__ import annotations

import importlib.util
import subprocess
import sys

import pytest

from helpers import ROOT
from helpers.real import run_in_vllm_env
from helpers.scale import prompt_table
from xmrc.backends.base import Generation
from xmrc.backends.vllm import (
    MAX_ROUNDS,
    adapter_rank,
    engine_settings,
    generate_until_complete,
    platform_settings,
    sampling_settings,
    token_prompts,
)
from xmrc.exceptions import XmrcError
from xmrc.extract import answer_complete

HAS_VLLM = importlib.util.find_spec("vllm") is not None


def test_engine_settings_tensor_parallel_prefix_caching_and_lora():
    settings = engine_settings("org/model", revision="abc", tensor_parallel_size=4, max_model_len=8192)
    assert settings["tensor_parallel_size"] == 4 and settings["enable_prefix_caching"] is True
    assert settings["revision"] == settings["tokenizer_revision"] == "abc"
    assert settings["max_model_len"] == 8192 and "enable_lora" not in settings
    with_lora = engine_settings("org/model", lora_rank=8)
    assert with_lora["enable_lora"] is True and with_lora["max_lora_rank"] == 8
    assert "max_model_len" not in engine_settings("org/model")


def test_cpu_engines_run_eagerly_with_a_kv_cache_in_bytes_and_gpu_engines_are_untouched():
    assert platform_settings(is_cpu=False) == {}
    cpu = platform_settings(is_cpu=True, cpu_kv_cache_gb=0.5)
    assert cpu == {"enforce_eager": True, "kv_cache_memory_bytes": 1 << 29}
    gpu = engine_settings("org/model", platform=platform_settings(False))
    assert "enforce_eager" not in gpu and "kv_cache_memory_bytes" not in gpu and gpu["gpu_memory_utilization"] == 0.9
    assert engine_settings("org/model", platform=cpu)["enforce_eager"] is True


def test_engine_lora_rank_is_the_adapters_own(tmp_path):
    (tmp_path / "adapter_config.json").write_text('{"r": 8}')
    assert adapter_rank(str(tmp_path)) == 8
    (tmp_path / "adapter_config.json").write_text('{"r": 12}')
    assert adapter_rank(str(tmp_path)) == 16
    with pytest.raises(XmrcError, match="not a LoRA adapter directory"):
        adapter_rank(str(tmp_path / "missing"))


def test_sampling_is_greedy_short_and_stops_at_newline():
    params = sampling_settings(12)
    assert params["temperature"] == 0.0 and params["max_tokens"] == 12 and params["stop"] == ["\n"]
    assert params["include_stop_str_in_output"] is True


def test_token_prompts_are_tokens_prompt_dicts():
    assert token_prompts([[1, 2], (3,)]) == [{"prompt_token_ids": [1, 2]}, {"prompt_token_ids": [3]}]


class ScriptedEngine:
    """Stands in for vLLM (not installable here): answers each prompt from a script of (text, ids, stopped)
    rounds, and records what it was asked."""

    def __init__(self, script):
        self.script, self.calls = {k: list(v) for k, v in script.items()}, []

    def __call__(self, token_ids, budgets):
        self.calls.append((token_ids, budgets))
        return [self.script[ids[0]].pop(0) for ids in token_ids]


def test_continues_only_incomplete_answers_from_the_tokens_so_far():
    engine = ScriptedEngine(
        {
            1: [(" Paris\n", [11, 12], True)],  # base model: complete at the newline
            2: [("\n", [13], True), ("Answer: Rome\n", [14, 15, 16], True)],  # leading newline: continue
            3: [("Answer:\n", [17, 18], True), ("Oslo\n", [19, 20], True)],  # label alone: continue
            4: [("no newline", [21, 22, 23], False)],  # EOS or budget: never continued
        }
    )
    results = generate_until_complete(engine, [[1, 9], [2], [3, 9, 9], [4]], 8, answer_complete)
    assert [r.text for r in results] == [" Paris\n", "\nAnswer: Rome\n", "Answer:\nOslo\n", "no newline"]
    assert results[1] == Generation("\nAnswer: Rome\n", 1, 4) and results[2].output_tokens == 4
    second_ids, second_budgets = engine.calls[1]
    assert second_ids == [[2, 13], [3, 9, 9, 17, 18]] and second_budgets == [7, 6]
    assert len(engine.calls) == 2


def test_continuation_respects_the_budget_and_round_limit():
    engine = ScriptedEngine({1: [("\n", [5], True)] * MAX_ROUNDS})
    result = generate_until_complete(engine, [[1]], 64, answer_complete)[0]
    assert len(engine.calls) == MAX_ROUNDS and result.output_tokens == MAX_ROUNDS
    engine = ScriptedEngine({1: [("\n", [5, 6], True)]})
    assert generate_until_complete(engine, [[1]], 2, answer_complete)[0].output_tokens == 2
    assert len(engine.calls) == 1  # budget spent: no second round


def test_templated_prompts_get_one_bos(tiny_models):
    from xmrc.backends.hf import load_tokenizer

    tokenizer = load_tokenizer(tiny_models["llama-chat"])
    chat = prompt_table(tiny_models["llama-chat"], max_items=1)
    assert chat["templated"].all()
    ids = tokenizer(chat["prompt"].tolist(), add_special_tokens=False)["input_ids"]  # as VLLMBackend.tokenize
    assert all(seq[0] == tokenizer.bos_token_id and seq.count(tokenizer.bos_token_id) == 1 for seq in ids)
    base = prompt_table(None, max_items=1)
    ids = tokenizer(base["prompt"].tolist(), add_special_tokens=True)["input_ids"]
    assert all(seq[0] == tokenizer.bos_token_id and seq.count(tokenizer.bos_token_id) == 1 for seq in ids)


@pytest.mark.skipif(HAS_VLLM, reason="vllm is installed here")
def test_missing_vllm_is_a_one_line_error(tiny_models, tmp_path):
    from xmrc.backends import create_backend

    with pytest.raises(XmrcError, match="vllm package is not installed"):
        create_backend("vllm", weights=tiny_models["llama-chat"])
    prompts = tmp_path / "p.parquet"
    prompt_table(tiny_models["llama-chat"], max_items=1).to_parquet(prompts)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "xmrc",
            "generate-job",
            "--prompts",
            str(prompts),
            "--registry",
            str(ROOT / "config/models.yaml"),
            "--model",
            "tiny-llama-chat",
            "--weights",
            tiny_models["llama-chat"],
            "--shots",
            "0",
            "--format",
            "v1",
            "--backend",
            "vllm",
            "--out",
            str(tmp_path / "g.parquet"),
        ],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(ROOT / "src"), "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 2 and result.stderr.startswith("xmrc: error: backend vllm")
    assert result.stderr.count("\n") == 1


def test_calls_match_the_installed_vllm_api(tiny_models):
    result = run_in_vllm_env(ROOT / "tests/helpers/vllm_contract.py", tiny_models["llama-chat"], timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    assert "contract ok" in result.stdout and "one BOS" in result.stdout
