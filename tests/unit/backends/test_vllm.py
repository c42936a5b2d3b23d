"""The vLLM backend's plain functions: request building, settings (CPU and GPU), the continuation loop,
tokenisation (no double BOS), the one-line error where vllm is not installed (the main environment), and the
objects xmrc builds checked against the vLLM environment's vLLM (tests/helpers/vllm_contract.py; `make test`
builds that environment). Faults: what a retry asks the engine for (and that it keeps the checkpoint
fingerprint), the one-line start failures, the watch that wakes a generate call whose engine core was killed,
and a job that ends on a dead engine core keeping its chunks. tests/workflow/test_real_vllm.py runs the engine
on a real model, tests/workflow/test_vllm_faults.py its faults."""

from __future__ import annotations

import importlib.util
import multiprocessing
import os
import queue
import signal
import subprocess
import sys
import textwrap
import time
from types import SimpleNamespace

import pandas as pd
import pytest

from helpers import ROOT
from helpers.real import run_in_vllm_env
from helpers.scale import prompt_table
from xmrc.backends.base import Generation
from xmrc.backends.vllm import (
    ATTEMPT_ENV,
    GIB,
    MAX_ROUNDS,
    EngineDied,
    EngineWatch,
    adapter_rank,
    engine_died_message,
    engine_settings,
    generate_until_complete,
    job_attempt,
    platform_settings,
    process_end,
    retry_settings,
    sampling_settings,
    start_failure,
    token_prompts,
)
from xmrc.exceptions import XmrcError
from xmrc.extract import answer_complete
from xmrc.generation import checkpoint_backend, run_generation
from xmrc.jobs import fingerprint

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


# --- faults: retries, start failures, a dead engine core ----------------------------------------------------------

CPU = engine_settings("org/model", dtype="float32", platform=platform_settings(True))
GPU = engine_settings("org/model", platform=platform_settings(False))


def test_a_retry_gets_more_kv_cache_on_cpu_and_a_smaller_batch_on_gpu():
    assert retry_settings(CPU, 1) == CPU and retry_settings(GPU, 1) == GPU
    assert [retry_settings(CPU, k)["kv_cache_memory_bytes"] for k in (1, 2, 3)] == [GIB, 2 * GIB, 3 * GIB]
    assert all(retry_settings(CPU, k)["max_num_seqs"] == 256 for k in (1, 2, 3))  # CPU: the batch stays
    assert [retry_settings(GPU, k)["max_num_seqs"] for k in (1, 2, 3, 4)] == [256, 128, 64, 32]
    assert retry_settings(GPU, 12)["max_num_seqs"] == 1  # never below one sequence
    assert "kv_cache_memory_bytes" not in retry_settings(GPU, 3)  # GPUs keep their share of memory
    rest = {key: value for key, value in retry_settings(GPU, 3).items() if key != "max_num_seqs"}
    assert rest == {key: value for key, value in GPU.items() if key != "max_num_seqs"}


def test_the_attempt_comes_from_the_option_or_the_environment(monkeypatch):
    monkeypatch.delenv(ATTEMPT_ENV, raising=False)
    assert job_attempt() == 1 and job_attempt(3) == 3
    monkeypatch.setenv(ATTEMPT_ENV, "2")
    assert job_attempt() == 2
    for bad in ("0", "two", "-1"):
        monkeypatch.setenv(ATTEMPT_ENV, bad)
        with pytest.raises(XmrcError, match=f"attempt: expected a whole number from 1 .*got '{bad}'"):
            job_attempt()


def _described(settings: dict, attempt: int) -> dict:
    """What VLLMBackend.describe() gives for `settings` on `attempt`."""
    return {
        "name": "vllm",
        "vllm": "0.32.0",
        "engine": retry_settings(settings, attempt),
        "lora": None,
        "sampling": sampling_settings(24),
        "retry": {"attempt": attempt, "settings": ["kv_cache_memory_bytes", "max_num_seqs"]},
    }


def test_what_a_retry_changes_stays_out_of_the_checkpoint_fingerprint():
    for settings in (CPU, GPU):
        prints = {fingerprint({"backend": checkpoint_backend(_described(settings, k))}, ["a"]) for k in (1, 2, 3)}
        assert len(prints) == 1
    longer = dict(CPU, max_model_len=4096)  # a setting that is not memory only: another job
    assert checkpoint_backend(_described(longer, 1)) != checkpoint_backend(_described(CPU, 1))
    assert checkpoint_backend({"name": "hf", "batch_size": 8}) == {"name": "hf", "batch_size": 8}


# vLLM 0.32.0's own messages (vllm/v1/core/kv_cache_utils.py, vllm/v1/engine/utils.py)
KV_TOO_SMALL = (
    "To serve at least one request with the model's max seq len (32768), (1.41 GiB KV cache is needed, which is "
    "larger than the available KV cache memory (0.99 GiB). Based on the available memory, the estimated maximum "
    "model length is 23168. Try increasing `gpu_memory_utilization` (which also controls CPU memory on the CPU "
    "backend) or decreasing `max_model_len` when initializing the engine. See https://docs.vllm.ai/en/latest/"
    "configuration/conserving_memory/ for more details."
)
NO_CACHE_MEMORY = (
    "No available memory for the cache blocks. Try increasing `gpu_memory_utilization` when initializing the engine "
    "(this flag also controls CPU memory reservation on the CPU backend, despite its name). See https://docs.vllm.ai/"
    "en/latest/configuration/conserving_memory/ for more details."
)
CORE_FAILED = "Engine core initialization failed. See root cause above. Failed core proc(s): {'EngineCore': 1}"


def test_engine_start_failures_are_one_line_naming_the_setting_and_what_a_retry_gets():
    assert start_failure(KV_TOO_SMALL, CPU, CPU, 1) == (
        "vLLM engine cannot start: max_model_len 32768 needs 1.41 GiB of KV cache, more than the 0.99 GiB it has "
        "(attempt 1: kv_cache_memory_bytes 1073741824; vLLM estimates the longest that fits at 23168); a retry "
        "(--attempt 2) gets 2 GiB of KV cache, or lower --max-model-len"
    )
    assert start_failure(KV_TOO_SMALL, retry_settings(GPU, 2), GPU, 2).endswith(
        "(attempt 2: gpu_memory_utilization 0.9, max_num_seqs 128; vLLM estimates the longest that fits at 23168);"
        " a retry (--attempt 3) runs max_num_seqs 64, or lower --max-model-len"
    )
    assert start_failure(NO_CACHE_MEMORY, GPU, GPU, 1) == (
        "vLLM engine cannot start: no memory is left for the KV cache after the weights and activations (attempt 1:"
        " gpu_memory_utilization 0.9, max_num_seqs 256); a retry (--attempt 2) runs max_num_seqs 128, or raise"
        " --gpu-memory-utilization"
    )
    assert start_failure("CUDA out of memory. Tried to allocate 2.00 GiB", GPU, GPU, 1) == (
        "vLLM engine ran out of device memory while starting (attempt 1: gpu_memory_utilization 0.9, max_num_seqs"
        " 256); a retry (--attempt 2) runs max_num_seqs 128"
    )
    assert start_failure(CORE_FAILED.replace("1}", "-9}"), dict(GPU, max_model_len=8192), GPU, 1) == (
        "vLLM engine core process failed to start (killed by SIGKILL (e.g. the out-of-memory killer)) (attempt 1:"
        " gpu_memory_utilization 0.9, max_num_seqs 256); a retry (--attempt 2) runs max_num_seqs 128"
    )
    assert start_failure(CORE_FAILED, dict(GPU, max_model_len=8192), GPU, 1) == (
        "vLLM engine core process failed to start (exit status 1; its log above says why, e.g. a KV cache too small"
        " for max_model_len 8192, or out of memory) (attempt 1: gpu_memory_utilization 0.9, max_num_seqs 256); a"
        " retry (--attempt 2) runs max_num_seqs 128"
    )
    assert start_failure("The model's max seq len (9000) is larger than max_position_embeddings", CPU, CPU, 1) is None
    assert all("\n" not in start_failure(text, CPU, CPU, 1) for text in (KV_TOO_SMALL, NO_CACHE_MEMORY, CORE_FAILED))


def test_how_a_process_ended_in_words():
    assert process_end(-9) == "killed by SIGKILL (e.g. the out-of-memory killer)"
    assert process_end(-11) == "killed by SIGSEGV" and process_end(1) == "exit status 1"
    assert engine_died_message(123, -9) == (
        "vLLM engine core process (pid 123) died while generating: killed by SIGKILL (e.g. the out-of-memory killer)"
    )
    assert engine_died_message(None, None).startswith("vLLM engine core died while generating (EngineDeadError")


def _engine_core() -> multiprocessing.Process:
    process = multiprocessing.get_context("fork").Process(target=time.sleep, args=(60,), daemon=True)
    process.start()
    return process


def _llm(processes, outputs_queue=None):
    """Stands in for `vllm.LLM` with its engine core in processes of its own (vLLM's SyncMPClient)."""
    resources = SimpleNamespace(engine_manager=SimpleNamespace(processes=processes))
    client = SimpleNamespace(resources=resources)
    if outputs_queue is not None:
        client.outputs_queue = outputs_queue
    return SimpleNamespace(llm_engine=SimpleNamespace(engine_core=client))


class DeadEngine(Exception):
    pass


def test_the_watch_wakes_a_generate_call_whose_engine_core_is_killed():
    process, outputs = _engine_core(), queue.Queue()
    watch = EngineWatch(_llm([process], outputs), dead_error=DeadEngine)
    with watch.generating():  # the call: vLLM's get_output() waits on this queue
        os.kill(process.pid, signal.SIGKILL)
        started = time.monotonic()
        woken = outputs.get(timeout=10)
    assert isinstance(woken, DeadEngine) and time.monotonic() - started < 2
    assert watch.died == watch.killed() == (process.pid, -signal.SIGKILL)
    alive = _engine_core()  # an engine core that lives: the call returns and the watch lets it be
    quiet = EngineWatch(_llm([alive], queue.Queue()), dead_error=DeadEngine)
    with quiet.generating():
        time.sleep(0.2)
    alive.kill()
    alive.join()
    time.sleep(0.6)  # past the watch's poll: it has stopped, nothing was queued
    assert quiet.died is None and quiet.client.outputs_queue.empty()
    assert quiet.killed() == (alive.pid, -signal.SIGKILL)  # killed between two calls: found when the next fails
    with EngineWatch(SimpleNamespace()).generating():  # engine core in this process: nothing to watch
        pass


def test_the_watch_ends_the_process_when_the_call_never_returns():
    script = textwrap.dedent(
        """
        import multiprocessing, os, signal, time
        from types import SimpleNamespace
        from xmrc.backends.vllm import EngineWatch
        process = multiprocessing.get_context("fork").Process(target=time.sleep, args=(60,), daemon=True)
        process.start()
        print(process.pid, flush=True)
        client = SimpleNamespace(resources=SimpleNamespace(engine_manager=SimpleNamespace(processes=[process])))
        watch = EngineWatch(SimpleNamespace(llm_engine=SimpleNamespace(engine_core=client)), grace_s=0.5)
        with watch.generating():
            os.kill(process.pid, signal.SIGKILL)
            time.sleep(30)  # a call that nothing wakes
        """
    )
    started = time.monotonic()
    env = {"PYTHONPATH": str(ROOT / "src")}
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=30, env=env)
    pid = result.stdout.strip()
    assert result.returncode == 2 and time.monotonic() - started < 15, result.stderr
    assert result.stderr.strip().splitlines() == [
        f"xmrc: error: vLLM engine core process (pid {pid}) died while generating: killed by SIGKILL (e.g. the"
        " out-of-memory killer), and vLLM did not return within 0.5 s; the chunks done are kept in the job's shard"
        " folder; rerun to resume"
    ]


class FlakyEngine:
    """A backend whose engine core dies on its `dies_on`-th call (0: never); records the prompts it ran."""

    name = "fake-vllm"

    def __init__(self, dies_on: int = 0):
        self.dies_on, self.calls, self.prompts = dies_on, 0, []

    def generate(self, prompts, max_new_tokens, templated, stop_when=None):
        self.calls += 1
        if self.calls == self.dies_on:
            raise EngineDied(engine_died_message(4321, -9))
        self.prompts += prompts
        return [Generation(f"answer to {prompt}\n", 3, 2) for prompt in prompts]


def test_a_dead_engine_core_ends_the_job_in_one_line_and_a_rerun_computes_only_the_chunks_not_kept(tmp_path):
    prompts = pd.DataFrame(
        {
            "id": [f"q{i}" for i in range(10)],
            "context_lang": "en",
            "question_lang": "de",
            "answer_lang": "en",
            "gold": "x",
            "prompt": [f"prompt {i}" for i in range(10)],
            "templated": False,
        }
    )
    job = dict(model="m", shots=0, prompt_format="v1", max_new_tokens=8, chunk_size=3, order="table", progress=False)
    out = tmp_path / "g.parquet"
    with pytest.raises(XmrcError) as raised:
        run_generation(prompts, FlakyEngine(dies_on=3), out, **job)
    assert str(raised.value) == (
        "vLLM engine core process (pid 4321) died while generating: killed by SIGKILL (e.g. the out-of-memory"
        f" killer); 2 of 4 chunks are kept in {tmp_path / 'g.parquet.shards'}; rerun to resume"
    )
    assert not out.exists()
    retry = FlakyEngine()
    resumed = run_generation(prompts, retry, out, **job)
    assert retry.prompts == [f"prompt {i}" for i in range(6, 10)]  # chunks 3 and 4 only
    assert resumed.equals(run_generation(prompts, FlakyEngine(), tmp_path / "uninterrupted.parquet", **job))
