"""Throughput and peak memory of the layer-wise extractions: AttnLRP relevance and pooled hidden states.

    python bench/bench_layers.py [--weights DIR] [--random-8b] [--items N] [--languages en de ...]
                                 [--relevance-batch B] [--hidden-batch B] [--dtype float32|bfloat16] [--repeat R]

Prompts are the workflow's own: 2-shot v2 en-x prompts of the bundled XQuAD subset (data/xquad_subset)
through the model's chat template, N items x the given languages. Timed in the same process, best of --repeat
passes after one warm-up batch:
  - relevance with the AttnLRP rules (the workflow's step), and plain gradient x input on the same batches
    (the cost of the LRP rules is their ratio);
  - pooled hidden-state extraction (forward only).
Peak memory: the process's maximum resident set (CPU) or torch's peak allocated memory per GPU.

Models: a tiny random Llama built on the fly (default), a weights directory (--weights), or --random-8b: a
randomly initialised model of Llama-3.1-8B's shape (32 layers, d = 4096, 128k vocabulary) with the tiny
tokenizer, which times an 8B model without its weights (GPU; bfloat16).
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
try:
    import xmrc.analysis.layers.relevance  # noqa: F401
except ImportError:  # not installed with the analysis modules: use the source tree
    sys.path.insert(0, str(HERE.parent / "src"))

import torch

from xmrc.analysis.layers.hidden_states import pooled_hidden_states
from xmrc.analysis.layers.inputs import encode, load_model
from xmrc.analysis.layers.relevance import layer_relevance
from xmrc.data import load_local, prepare
from xmrc.prompts import build_prompt_table, hf_chat_template

SUBSET = HERE.parent / "data" / "xquad_subset"
DEMOS = ["56dde1d966d3e219004dad8d", "56de49564396321400ee277a"]
LLAMA_8B_SHAPE = dict(
    hidden_size=4096,
    intermediate_size=14336,
    num_hidden_layers=32,
    num_attention_heads=32,
    num_key_value_heads=8,
    head_dim=128,
    vocab_size=128256,
    rope_theta=500000.0,
)


def build_tiny(out: Path, table) -> Path:
    from xmrc.tinymodels import build_tiny_model

    corpus = list(dict.fromkeys(table["context"])) + table["question"].tolist()
    return build_tiny_model("llama", True, corpus, out, seed=0)


def build_random_8b(out: Path, tokenizer_dir: Path) -> Path:
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    config = AutoConfig.from_pretrained(tokenizer_dir)
    for key, value in LLAMA_8B_SHAPE.items():
        setattr(config, key, value)
    with torch.device("cuda" if torch.cuda.is_available() else "cpu"):
        model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    model.save_pretrained(out)
    AutoTokenizer.from_pretrained(tokenizer_dir).save_pretrained(out)
    del model
    return out


def peak_memory() -> str:
    if torch.cuda.is_available():
        return ", ".join(
            f"GPU{i} {torch.cuda.max_memory_allocated(i) / 2**30:.2f} GiB" for i in range(torch.cuda.device_count())
        )
    return f"RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GiB"


def timed(label: str, batches, step, repeat: int) -> float:
    """Best of `repeat` passes over all batches (the machine may be shared: the best pass is the least
    disturbed one), after one warm-up batch."""
    step(batches[0])
    if torch.cuda.is_available():
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    prompts = sum(len(batch) for batch in batches)
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        for batch in batches:
            step(batch)
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
    print(
        f"{label:<38} {prompts / best:8.2f} prompts/s  ({prompts} prompts, best of {repeat}: {best:.2f} s; "
        f"peak {peak_memory()})"
    )
    return prompts / best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", help="model directory (default: a tiny random Llama built here)")
    parser.add_argument("--random-8b", action="store_true", help="random weights of Llama-3.1-8B's shape")
    parser.add_argument("--items", type=int, default=8)
    parser.add_argument("--languages", nargs="+", default=["en", "de", "zh", "ar"])
    parser.add_argument("--relevance-batch", type=int, default=4)
    parser.add_argument("--hidden-batch", type=int, default=8)
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    table, _ = prepare(load_local(SUBSET, args.languages), args.languages)
    with tempfile.TemporaryDirectory() as scratch:
        weights = Path(args.weights) if args.weights else build_tiny(Path(scratch) / "tiny", table)
        if args.random_8b:
            weights = build_random_8b(Path(scratch) / "random-8b", weights)
        model, tokenizer = load_model(str(weights), dtype=args.dtype)
        template = hf_chat_template(tokenizer) if tokenizer.chat_template else None
        prompts = build_prompt_table(table, args.languages, 2, "v2", DEMOS, template, args.items)
        prompts = prompts[prompts["context_lang"] == "en"]
        encoded = [encode(tokenizer, row) for _, row in prompts.iterrows()]
        lengths = [len(e.input_ids) for e in encoded]
        print(
            f"model {weights.name}: {model.config.num_hidden_layers} layers, d={model.config.hidden_size}, "
            f"{sum(p.numel() for p in model.parameters()) / 1e6:.1f}M parameters, {model.dtype}, "
            f"{model.device}; {len(encoded)} en-x prompts, mean {sum(lengths) / len(lengths):.0f} tokens"
        )
        pad = tokenizer.pad_token_id

        def batches(size):
            order = sorted(encoded, key=lambda e: -len(e.input_ids))
            return [order[i : i + size] for i in range(0, len(order), size)]

        lrp = timed(
            f"relevance, AttnLRP (batch {args.relevance_batch})",
            batches(args.relevance_batch),
            lambda b: layer_relevance(model, b, pad, lrp=True),
            args.repeat,
        )
        plain = timed(
            f"gradient x input (batch {args.relevance_batch})",
            batches(args.relevance_batch),
            lambda b: layer_relevance(model, b, pad, lrp=False),
            args.repeat,
        )
        hidden = timed(
            f"pooled hidden states (batch {args.hidden_batch})",
            batches(args.hidden_batch),
            lambda b: pooled_hidden_states(model, b, pad),
            args.repeat,
        )
        print(
            f"time per prompt: AttnLRP relevance = {plain / lrp:.2f} x gradient x input, "
            f"{hidden / lrp:.2f} x hidden-state extraction"
        )


if __name__ == "__main__":
    main()
