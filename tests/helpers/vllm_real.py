"""Checks of xmrc's vLLM code on a real model, run under the vLLM environment's python
(tests/workflow/test_real_vllm.py).

    python tests/helpers/vllm_real.py engine SNAPSHOT PROMPTS.json ADAPTER OUT.json
        one LoRA-enabled engine (xmrc's VLLMBackend): the continuation loop on real outputs against one
        unstopped greedy call, then the prompts with the adapter (LoRARequest) and without it
    python tests/helpers/vllm_real.py judge SNAPSHOT PROMPTS.json OUT.json
        xmrc's VLLMJudge: structured-output verdicts and label log-probabilities

PROMPTS.json is {"prompts": [...], "templated": bool, "max_new_tokens": int}. Results are JSON in OUT.json.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path


def _two_lines(text: str) -> bool:
    """A stop rule that needs a second line: every sequence that stops at its first newline is continued."""
    return text.count("\n") >= 2


def _first_lines(text: str, count: int) -> str:
    """`text` up to and including its `count`-th newline (all of it when it has fewer)."""
    end = -1
    for _ in range(count):
        end = text.find("\n", end + 1)
        if end < 0:
            return text
    return text[: end + 1]


def engine(snapshot: str, prompts_file: str, adapter: str, out: str) -> None:
    from vllm import SamplingParams

    from xmrc.backends.vllm import VLLMBackend, token_prompts

    spec = json.loads(Path(prompts_file).read_text(encoding="utf-8"))
    prompts, templated, budget = spec["prompts"], spec["templated"], spec["max_new_tokens"]
    started = time.perf_counter()
    backend = VLLMBackend(snapshot, dtype="float32", lora=adapter, progress=False)
    ready = time.perf_counter()
    lora_request, backend.lora_request = backend.lora_request, None
    continued = [g.text for g in backend.generate(prompts, budget, templated, stop_when=_two_lines)]
    unstopped = backend.llm.generate(
        token_prompts(backend.tokenize(prompts, templated)),
        SamplingParams(temperature=0.0, max_tokens=budget, skip_special_tokens=True),
        use_tqdm=False,
    )
    greedy = [_first_lines(o.outputs[0].text, 2) for o in unstopped]
    base = [g.text for g in backend.generate(prompts, budget, templated)]
    backend.lora_request = lora_request
    adapted = [g.text for g in backend.generate(prompts, budget, templated)]
    result = {
        "continued": continued,
        "greedy_two_lines": greedy,
        "base": base,
        "lora": adapted,
        "engine": backend.describe()["engine"],
        "engine_start_s": ready - started,
        "generate_s": time.perf_counter() - ready,
    }
    Path(out).write_text(json.dumps(result, ensure_ascii=False), encoding="utf-8")


def judge(snapshot: str, prompts_file: str, out: str) -> None:
    from xmrc.errors.judge import LABELS, VLLMJudge

    spec = json.loads(Path(prompts_file).read_text(encoding="utf-8"))
    scorer = VLLMJudge(snapshot, dtype="float32")
    started = time.perf_counter()
    verdicts, scores = scorer.score(spec["prompts"], LABELS, spec["templated"])
    result = {
        "verdicts": [int(v) for v in verdicts],
        "scores": [[float(x) for x in row] for row in scores],
        "settings": {k: v for k, v in scorer.settings.items() if k != "model"},
        "score_s": time.perf_counter() - started,
    }
    Path(out).write_text(json.dumps(result), encoding="utf-8")


if __name__ == "__main__":
    commands = {"engine": engine, "judge": judge}
    commands[sys.argv[1]](*sys.argv[2:])
