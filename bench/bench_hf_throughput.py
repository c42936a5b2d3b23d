"""HF-backend generation throughput on a shape-realistic random model (Llama-3.1-8B shapes on a GPU).

Builds the tokenizer of a tiny model (no Hub here), a randomly initialised model with the chosen shapes
directly on the device (bf16 on GPU), and times `HFBackend.generate` on real 2-shot v1 prompts at several
batch sizes, with the workflow's early stop. A random model rarely writes a newline, so nearly every
sequence runs to max_new_tokens: the figures are a worst case for decoding, realistic for prefill.

    python bench/bench_hf_throughput.py [--shape 8b|tiny] [--prompts 256] [--batch-sizes 8 16 32]

`--shape tiny` runs on CPU in seconds (a check that the script works); `8b` wants a GPU with ~20 GB free.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

import torch
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

from xmrc import LANGUAGES, data
from xmrc.backends.hf import HFBackend
from xmrc.extract import answer_complete
from xmrc.prompts import build_prompt_table
from xmrc.tinymodels import build_tiny_model

LLAMA_31_8B = dict(
    hidden_size=4096,
    intermediate_size=14336,
    num_hidden_layers=32,
    num_attention_heads=32,
    num_key_value_heads=8,
    head_dim=128,
    vocab_size=128256,
    max_position_embeddings=131072,
    rope_theta=500000.0,
)
DEMONSTRATIONS = ["56dde1d966d3e219004dad8d", "56de49564396321400ee277a"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", choices=["8b", "tiny"], default="8b")
    parser.add_argument("--prompts", type=int, default=256)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[8, 16, 32])
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--xquad-dir", default=os.environ.get("XMRC_XQUAD_DIR"))
    args = parser.parse_args()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    directory = Path(args.xquad_dir) if args.xquad_dir else ROOT / "data" / "xquad_subset"
    if not (directory / "xquad.en.json").exists():
        directory = ROOT / "data" / "xquad_subset"
    table, _ = data.prepare(data.load_local(directory, LANGUAGES), LANGUAGES)
    prompts = build_prompt_table(table, LANGUAGES, 2, "v1", DEMONSTRATIONS, None)
    prompts = prompts.sample(n=min(args.prompts, len(prompts)), random_state=0)["prompt"].tolist()

    with tempfile.TemporaryDirectory() as scratch:
        tiny = build_tiny_model(
            "llama",
            False,
            list(table["context"].unique()) + table["question"].tolist(),
            Path(scratch) / "tiny",
            vocab_size=8192,
        )
        tokenizer = AutoTokenizer.from_pretrained(tiny)
        config = AutoConfig.from_pretrained(tiny)
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    if args.shape == "8b":
        for key, value in LLAMA_31_8B.items():
            setattr(config, key, value)
    started = time.perf_counter()
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(config, dtype=dtype)
    parameters = sum(p.numel() for p in model.parameters())
    print(
        f"{args.shape}: {parameters / 1e9:.2f} B parameters, {dtype}, {device}"
        f"{' (' + torch.cuda.get_device_name() + ')' if device == 'cuda' else ''}; "
        f"initialised in {time.perf_counter() - started:.1f} s; {len(prompts)} prompts"
    )
    prompt_tokens = sum(len(ids) for ids in tokenizer(prompts)["input_ids"])
    print("| batch size | seconds | prompts/s | prompt tokens/s | generated tokens/s |")
    print("|---:|---:|---:|---:|---:|")
    for batch_size in args.batch_sizes:
        backend = HFBackend.from_model(model, tokenizer, batch_size=batch_size, progress=False)
        backend.generate(prompts[:batch_size], 4, False)  # warm-up: kernels, allocator
        if device == "cuda":
            torch.cuda.synchronize()
        started = time.perf_counter()
        generations = backend.generate(prompts, args.max_new_tokens, False, stop_when=answer_complete)
        if device == "cuda":
            torch.cuda.synchronize()
        seconds = time.perf_counter() - started
        produced = sum(g.output_tokens for g in generations)
        print(
            f"| {batch_size} | {seconds:.1f} | {len(prompts) / seconds:.2f} | {prompt_tokens / seconds:.0f} "
            f"| {produced / seconds:.0f} |"
        )


if __name__ == "__main__":
    main()
