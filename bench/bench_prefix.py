"""Prefix sharing of the paper's generation jobs, and the number of model loads in the paper DAG.

For every (shots, format) of the paper grid, builds the real prompts of all 23 directions (XQuAD: 1188 test
items each) as a base model gets them and as a chat model gets them (a Llama-3-style template), and prints
the share of prompt tokens that lie in a prefix shared with the previous prompt, in the prompt table's order
and in the prefix order generation jobs run in (`xmrc.backends.prefix`), also in whole 16-token KV blocks
(what vLLM's prefix cache can reuse). Tokens come from a byte-level BPE trained on the data (no Hub here):
real tokenizers cut differently, the shares barely move.

Then counts, from a dry run of config/config.yaml, the jobs that load model weights (one load per generation
job) and the API jobs (no load).

    python bench/bench_prefix.py [--xquad-dir DIR] [--max-items N]

DIR holds the original xquad.<lang>.json files (default: $XMRC_XQUAD_DIR, else the bundled subset).
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from xmrc import LANGUAGES, data
from xmrc.backends.prefix import prefix_order, shared_prefix_share
from xmrc.prompts import build_prompt_table
from xmrc.tinymodels import train_tokenizer

DEMONSTRATIONS = ["56dde1d966d3e219004dad8d", "56de49564396321400ee277a"]


def llama3_chat(user: str) -> str:
    return (
        "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\n"
        + user.strip()
        + "<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"
    )


def shares(prompts: list[str], tokenizer) -> dict:
    ordered = [prompts[i] for i in prefix_order(prompts)]
    table_tokens = tokenizer(prompts, add_special_tokens=False)["input_ids"]
    ordered_tokens = tokenizer(ordered, add_special_tokens=False)["input_ids"]
    return {
        "prompts": len(prompts),
        "tokens": sum(map(len, table_tokens)),
        "table order": shared_prefix_share(table_tokens),
        "prefix order": shared_prefix_share(ordered_tokens),
        "prefix order, 16-token blocks": shared_prefix_share(ordered_tokens, 16),
    }


def model_loads() -> dict:
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    out = subprocess.run(
        [sys.executable, "-m", "snakemake", "-n", "--quiet", "rules"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    counts = dict(re.findall(r"^(\w+)\s+(\d+)$", out, re.M))
    return {rule: int(counts.get(rule, 0)) for rule in ("fetch_model", "prompts", "generate", "generate_api")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--xquad-dir", default=os.environ.get("XMRC_XQUAD_DIR"))
    parser.add_argument("--max-items", type=int)
    args = parser.parse_args()
    directory = Path(args.xquad_dir) if args.xquad_dir else None
    if directory is None or not (directory / "xquad.en.json").exists():
        print(f"full XQuAD not found ({directory}); using the bundled subset", file=sys.stderr)
        directory = ROOT / "data" / "xquad_subset"
    table, _ = data.prepare(data.load_local(directory, LANGUAGES), LANGUAGES)
    started = time.perf_counter()
    tokenizer = train_tokenizer(list(table["context"].unique()) + table["question"].tolist(), vocab_size=8192)
    print(
        f"XQuAD from {directory.name}: {table['id'].nunique()} items x {table['lang'].nunique()} languages; "
        f"tokenizer trained in {time.perf_counter() - started:.1f} s\n"
    )

    print(
        "| setting | model kind | prompts | prompt tokens | shared, table order | shared, prefix order "
        "| shared, prefix order, 16-token blocks |"
    )
    print("|---|---|---:|---:|---:|---:|---:|")
    for shots in (0, 2):
        for fmt in ("v1", "v2"):
            started = time.perf_counter()
            prompts = build_prompt_table(table, LANGUAGES, shots, fmt, DEMONSTRATIONS, None, args.max_items)
            for kind, template in (("base", None), ("chat", llama3_chat)):
                texts = prompts["prompt"].tolist()
                if template is not None:
                    texts = [template(t.rsplit("\nAnswer:", 1)[0]) for t in texts]
                row = shares(texts, tokenizer)
                print(
                    f"| {shots}-shot {fmt} | {kind} | {row['prompts']} | {row['tokens']} "
                    f"| {100 * row['table order']:.1f}% | {100 * row['prefix order']:.1f}% "
                    f"| {100 * row['prefix order, 16-token blocks']:.1f}% |"
                )
            print(f"<!-- {shots}-shot {fmt}: {time.perf_counter() - started:.1f} s -->", file=sys.stderr)

    loads = model_loads()
    print(
        f"\nPaper DAG (config/config.yaml): {loads['generate']} generation jobs on local models = "
        f"{loads['generate']} model loads (one per (model, shots, format) job); {loads['generate_api']} API "
        f"jobs (no load); {loads['fetch_model']} snapshot downloads on the submit host; {loads['prompts']} "
        f"prompt jobs (tokenizer only)."
    )


if __name__ == "__main__":
    main()
