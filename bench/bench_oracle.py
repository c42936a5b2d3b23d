"""Oracle attribution throughput: Captum's FeatureAblation against our batched evaluator, same items, same run.

    python bench/bench_oracle.py                       # tiny Llama chat model on CPU (2-shot en-en/en-de prompts)
    python bench/bench_oracle.py --shape 8b --dtype bfloat16   # random LLaMA-3.1-8B-shaped model (needs a GPU)

Prints items/s of Captum (its default token-by-token forward, and its one-pass `forward_in_tokens=False`
mode), of the batched evaluator, the speed-up ratios, and the largest attribution difference to Captum.
Targets are the model's own greedy answers (random models: their first tokens), as in the workflow.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from xmrc.analysis.oracle.ablation import (
    BatchedAblation,
    CaptumAblation,
    Target,
    align_target,
    encode,
    item_from_prompt,
)
from xmrc.analysis.oracle.sentences import context_units
from xmrc.data import load_local
from xmrc.prompts import build_prompt_table, hf_chat_template
from xmrc.tinymodels import build_from_spec

DEMOS = ["56dde1d966d3e219004dad8d", "56de49564396321400ee277a"]
LLAMA_8B = {
    "hidden_size": 4096,
    "intermediate_size": 14336,
    "num_hidden_layers": 32,
    "num_attention_heads": 32,
    "num_key_value_heads": 8,
    "vocab_size": 128256,
    "max_position_embeddings": 8192,
    "rope_theta": 500000.0,
}


def load_model(shape: str, weights: Path, device: str, dtype: torch.dtype):
    from transformers import (
        AutoModelForCausalLM,
        AutoTokenizer,
        LlamaConfig,
        LlamaForCausalLM,
    )

    tokenizer = AutoTokenizer.from_pretrained(weights)
    if shape == "tiny":
        model = AutoModelForCausalLM.from_pretrained(weights, dtype=dtype)
    else:
        if device != "cuda":
            raise SystemExit("--shape 8b needs a GPU (about 16 GB of bfloat16 weights)")
        config = LlamaConfig(**LLAMA_8B, bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id)
        torch.manual_seed(0)
        with torch.device(device):
            model = LlamaForCausalLM(config).to(dtype)
    return model.to(device).eval(), tokenizer


def whole_characters(ids, tokenizer) -> Target:
    for end in range(len(ids), 1, -1):
        if not tokenizer.decode(ids[:end]).endswith("\ufffd"):
            return Target(list(ids[:end]), 1)
    return Target(list(ids[:2]), 1)


def make_items(table, model, tokenizer, count: int, max_new_tokens: int):
    per_direction = (count + 1) // 2
    prompts = build_prompt_table(table, ["en", "de"], 2, "v1", DEMOS, hf_chat_template(tokenizer), per_direction)
    prompts = prompts.head(count)
    english = table[table["lang"] == "en"].set_index("id")
    items = []
    for row in prompts.itertuples():
        ids = encode(tokenizer, row.prompt, row.templated)
        with torch.inference_mode():
            out = model.generate(
                torch.tensor([ids], device=model.device),
                max_new_tokens=max_new_tokens,
                do_sample=False,
                pad_token_id=tokenizer.pad_token_id,
            )
        generated = out[0, len(ids) :].tolist()
        target = align_target(generated, tokenizer) or whole_characters(generated, tokenizer)
        gold = english.loc[row.id]
        units = context_units(gold["context"], gold["answer_text"], int(gold["answer_start"]), "en").units
        items.append(
            item_from_prompt(row.prompt, row.context_start, [(u.start, u.end) for u in units], row.templated, target)
        )
    return items


def timed(evaluator, items, device):
    evaluator.attribute(items[0])  # warm-up: kernels, allocator, Captum imports
    if device == "cuda":
        torch.cuda.synchronize()
    started = time.perf_counter()
    results = [evaluator.attribute(item) for item in items]
    if device == "cuda":
        torch.cuda.synchronize()
    return results, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=12)
    parser.add_argument("--shape", choices=["tiny", "8b"], default="tiny")
    parser.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--max-new-tokens", type=int, default=12)
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=ROOT / "data" / "xquad_subset",
        help="directory of xquad.<lang>.json (default: the bundled subset)",
    )
    parser.add_argument("--skip-token-mode", action="store_true", help="skip Captum's slow token-by-token mode")
    args = parser.parse_args()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    torch.set_num_threads(max(torch.get_num_threads(), 1))
    table = load_local(args.data_dir, ["en", "de"])
    with tempfile.TemporaryDirectory() as tmp:
        weights = Path(tmp) / "tiny-llama-chat"
        build_from_spec(
            {"architecture": "llama", "chat": True, "seed": 0},
            list(table["context"].unique()) + table["question"].tolist(),
            weights,
        )
        model, tokenizer = load_model(args.shape, weights, device, getattr(torch, args.dtype))
    items = make_items(table, model, tokenizer, args.items, args.max_new_tokens)
    units = np.mean([len(i.units) for i in items])
    tokens = np.mean([len(encode(tokenizer, i.prompt, i.templated)) for i in items])
    targets = np.mean([len(i.target.ids) for i in items])
    print(
        f"device {device}, model {args.shape} ({args.dtype}), {len(items)} items: {units:.1f} sentence units, "
        f"{tokens:.0f} prompt tokens, {targets:.1f} target tokens on average; torch threads "
        f"{torch.get_num_threads()}"
    )

    runs = {}
    if not args.skip_token_mode:
        runs["captum (token by token, default)"] = CaptumAblation(model, tokenizer, forward_in_tokens=True)
    runs["captum (one pass per perturbation)"] = CaptumAblation(model, tokenizer, forward_in_tokens=False)
    runs["batched (ours)"] = BatchedAblation(model, tokenizer, args.batch_size)
    timings, outputs = {}, {}
    for name, evaluator in runs.items():
        outputs[name], timings[name] = timed(evaluator, items, device)
    reference = next(iter(outputs))
    ours = timings["batched (ours)"]
    for name, seconds in timings.items():
        diff = max(np.abs(a - b).max() for a, b in zip(outputs[name], outputs[reference]))
        print(
            f"{name:38s} {len(items) / seconds:8.2f} items/s  {seconds / len(items) * 1000:9.1f} ms/item  "
            f"speed-up of ours {seconds / ours:6.2f}x  max |attr - {reference.split(' (')[0]} ref| {diff:.2e}"
        )


if __name__ == "__main__":
    main()
