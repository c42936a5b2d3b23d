"""xmrc's use of the vLLM API, checked against an installed vLLM (no GPU needed: nothing runs a model).

Run with the Python of a vLLM environment (envs/vllm.yaml), from the repository root:
    PYTHONPATH=src <vllm-env>/bin/python tests/helpers/vllm_contract.py [CHAT_MODEL_DIR]
It builds every object (with the GPU and the CPU engine settings) the vLLM backend and the vLLM judge build,
with the keywords they pass, and checks
the names of the fields they read from vLLM's outputs. With a (tiny) chat model's directory, it also loads its
tokenizer through xmrc with that environment's transformers and checks that a templated prompt, tokenised as
the backend does, starts with exactly one BOS. Prints one line per check and `contract ok <version>`.
"""

from __future__ import annotations

import dataclasses
import inspect
import sys


def main(chat_model: str | None = None) -> int:
    import vllm
    from vllm import LLM, EngineArgs, SamplingParams
    from vllm.inputs import TokensPrompt
    from vllm.logprobs import Logprob
    from vllm.lora.request import LoRARequest
    from vllm.outputs import CompletionOutput, RequestOutput

    from xmrc.backends.vllm import engine_settings, platform_settings, sampling_settings, token_prompts
    from xmrc.errors.judge import LABELS, vllm_request, vllm_sampling_params

    # LLM(**settings) hands its keywords to EngineArgs, a dataclass: an unknown name is a TypeError here
    for lora_rank in (None, 8):
        settings = engine_settings(
            "org/model", revision="abc", tensor_parallel_size=4, max_model_len=4096, lora_rank=lora_rank
        )
        engine = EngineArgs(**settings)
        assert engine.enable_prefix_caching is True and engine.tensor_parallel_size == 4
        assert engine.enable_lora is bool(lora_rank)
        print(f"EngineArgs accepts the engine settings (lora_rank={lora_rank})")

    cpu = EngineArgs(**engine_settings("org/model", platform=platform_settings(is_cpu=True, cpu_kv_cache_gb=1)))
    assert cpu.enforce_eager is True and cpu.kv_cache_memory_bytes == 1 << 30
    print("EngineArgs accepts the CPU settings (enforce_eager, kv_cache_memory_bytes)")

    params = SamplingParams(**sampling_settings(8))
    assert params.temperature == 0.0 and params.max_tokens == 8 and params.stop == ["\n"]
    assert params.include_stop_str_in_output
    print("SamplingParams: greedy, max_tokens, stop at a newline kept in the text")

    judge = vllm_sampling_params(vllm_request())
    constraint = getattr(judge, "structured_outputs", None) or getattr(judge, "guided_decoding", None)
    assert constraint is not None and list(constraint.choice) == list(LABELS) and judge.logprobs == 20
    print(f"judge SamplingParams: choice among {list(LABELS)} ({type(constraint).__name__}), top-20 logprobs")

    assert token_prompts([[1, 2]]) == [TokensPrompt(prompt_token_ids=[1, 2])]
    lora = LoRARequest("adapter", 1, "/adapters/qt")
    assert (lora.lora_name, lora.lora_int_id, lora.lora_path) == ("adapter", 1, "/adapters/qt")
    print("TokensPrompt and LoRARequest(name, id, path)")

    generate = inspect.signature(LLM.generate).parameters
    assert {"use_tqdm", "lora_request"} <= set(generate), sorted(generate)
    assert callable(getattr(LLM, "get_tokenizer", None))
    print("LLM.generate(prompts, params, use_tqdm=, lora_request=) and LLM.get_tokenizer")

    completion_fields = set(inspect.signature(CompletionOutput).parameters)
    assert {"text", "token_ids", "stop_reason", "logprobs"} <= completion_fields, sorted(completion_fields)
    assert "outputs" in inspect.signature(RequestOutput).parameters
    logprob_fields = {f.name for f in dataclasses.fields(Logprob)}
    assert {"logprob", "decoded_token"} <= logprob_fields, sorted(logprob_fields)
    print(
        "outputs: RequestOutput.outputs[0].{text, token_ids, stop_reason, logprobs}; Logprob.{logprob, decoded_token}"
    )

    if chat_model:
        import transformers

        from xmrc.backends.hf import load_tokenizer

        tokenizer = load_tokenizer(chat_model)
        text = tokenizer.apply_chat_template(
            [{"role": "user", "content": "Wer?"}], tokenize=False, add_generation_prompt=True
        )
        ids = tokenizer([text], add_special_tokens=False)["input_ids"][0]  # as VLLMBackend.tokenize
        assert ids[0] == tokenizer.bos_token_id and ids.count(tokenizer.bos_token_id) == 1, ids[:5]
        print(f"templated prompt: one BOS (transformers {transformers.__version__})")

    print(f"contract ok {vllm.__version__}")
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:2]))
