"""AttnLRP conservation and the MRD controls on real models (docs/layers.md, "MRD and conservation").

    python bench/bench_mrd_control.py [--model KEY=DIR ...] [--items N] [--scan M] [--question-lang de]
                                      [--format v1|v2] [--layout compact|paper] [--out DIR]

Each model (registry key = snapshot directory; a directory that does not exist is converted there from the
model's packaged GGUF, as the workflow does) runs in float32 on N items of the bundled XQuAD subset, chosen
among the first M by the model's greedy answer (not empty; copied from the context first): 2-shot prompts
(--format: v2 by default, the layer setting of the real and multilingual studies) in the en-x direction
(English context, question in --question-lang), through the chat template of a chat model, in the layout
of those studies (compact, "Answer:" after a base model's prompt) unless --layout paper. The greedy output
(16 new tokens) is the item's `raw_output`, so the explained token is what the workflow's relevance step
explains.

Printed (and written to --out as CSV): per depth, the relevance summed over the prompt's tokens over the
explained logit (`xmrc.analysis.layers.conservation`), under AttnLRP and CP-LRP; per condition and part, the
MRD statistics of `xmrc.analysis.layers.mrd_control` (mean over the items); the mean depth profile of
question and context.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
try:
    import xmrc.analysis.layers.mrd_control  # noqa: F401
except ImportError:  # not installed with the analysis modules: use the source tree
    sys.path.insert(0, str(HERE.parent / "src"))

import numpy as np
import pandas as pd
import torch

from xmrc.analysis.layers.conservation import conservation
from xmrc.analysis.layers.inputs import decoder_layers, encode, encode_to_answer, load_model
from xmrc.analysis.layers.mrd_control import STATISTICS, control_records, control_results
from xmrc.config import Registry
from xmrc.data import load_local, prepare
from xmrc.extract import extract_answer
from xmrc.prompts import COMPACT, PAPER_LAYOUT, build_prompt_table, hf_chat_template

ROOT = HERE.parent
SUBSET = ROOT / "data" / "xquad_subset"
DEMOS = ["56dde1d966d3e219004dad8d", "56de49564396321400ee277a"]
DEFAULT_MODELS = ["smollm2-135m-instruct=/tmp/xmrc-real/smollm2", "gemma3-270m=/tmp/xmrc-real/gemma"]


def snapshot(key: str, directory: Path) -> Path:
    if not directory.exists():
        from xmrc.hub.packaged import convert_packaged_model

        directory.parent.mkdir(parents=True, exist_ok=True)
        convert_packaged_model(Registry.load(ROOT / "config" / "models.yaml").get(key), directory)
    return directory


def explained_rows(model, tokenizer, prompts: pd.DataFrame, items: int, scan: int) -> pd.DataFrame:
    """`items` prompt rows, each with the model's greedy output, among the first `scan` whose output has an
    answer: those whose answer is copied from the context first (the task), then the others, in table order."""
    rows = []
    for _, row in prompts.head(scan).iterrows():
        ids = encode(tokenizer, row).input_ids
        with torch.no_grad():
            out = model.generate(
                torch.tensor([ids]),
                attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                max_new_tokens=16,
                do_sample=False,
                pad_token_id=tokenizer.pad_token_id,
            )[0, len(ids) :]
        row = row.copy()
        row["raw_output"] = tokenizer.decode(out, skip_special_tokens=True)
        if encode_to_answer(tokenizer, row)[1].explained:
            answer = extract_answer(row["raw_output"])
            rows.append((answer not in row["prompt"][row["context_start"] : row["context_end"]], len(rows), row))
    chosen = [row for *_, row in sorted(rows, key=lambda r: r[:2])[:items]]
    return pd.DataFrame(chosen).reset_index(drop=True)


def run_model(key: str, weights: Path, args, table: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    model, tokenizer = load_model(str(weights), dtype="float32")
    chat = Registry.load(ROOT / "config" / "models.yaml").get(key).chat_template
    layout = COMPACT if args.layout == "compact" else PAPER_LAYOUT
    prompts = build_prompt_table(
        table,
        ["en", args.question_lang],
        2,
        args.format,
        DEMOS,
        hf_chat_template(tokenizer) if chat else None,
        layout=layout,
    )
    prompts = prompts[(prompts["context_lang"] == "en") & (prompts["question_lang"] == args.question_lang)]
    rows = explained_rows(model, tokenizer, prompts, args.items, args.scan)
    depth = len(decoder_layers(model)) - 1
    cuts = {"question": depth // 3, "context": 2 * depth // 3}
    print(f"\n## {key} (2-shot {args.format}): N = {depth}, {len(rows)} prompts, known depths {cuts}", flush=True)
    conserved, controls = [], []
    for _, row in rows.iterrows():
        start = time.perf_counter()
        results = control_results(model, tokenizer, row, cuts)
        prompt, result = results["attnlrp"]
        answer = encode_to_answer(tokenizer, row)[1]
        for variant in ("attnlrp", "cp-lrp"):
            conserved.append(conservation(results[variant][1]).assign(model=key, variant=variant, id=row["id"]))
        controls.extend(dict(record, model=key, id=row["id"]) for record in control_records(results, cuts))
        print(
            f"{row['id']}: {len(prompt.input_ids)} tokens, output {row['raw_output']!r}, explained "
            f"{answer.target_text!r} (logit {result.target_logit:.2f}); {time.perf_counter() - start:.0f} s",
            flush=True,
        )
    return pd.concat(conserved, ignore_index=True), pd.DataFrame(controls)


def report(conserved: pd.DataFrame, controls: pd.DataFrame) -> None:
    for (key, variant), rows in conserved.groupby(["model", "variant"], sort=False):
        per_depth = rows.groupby("layer")["ratio"].agg(["median", "min", "max"])
        worst = per_depth["median"].sub(1).abs().sort_values(ascending=False).index[:3].tolist()
        print(f"\n### {key}, {variant}: relevance sum / explained logit per depth (median [min, max] over prompts)")
        print(" ".join(f"{d}:{m:.2f}[{lo:.2f},{hi:.2f}]" for d, (m, lo, hi) in per_depth.iterrows()))
        print(
            f"over depths: min {per_depth['median'].min():.3f}, median {per_depth['median'].median():.3f}, "
            f"max {per_depth['median'].max():.3f}; farthest from 1: depths {worst}"
        )
    columns = [*STATISTICS, "share_after_cut"]
    means = controls.groupby(["model", "condition", "part"], sort=False)[columns].mean()
    print("\n### MRD controls (mean over prompts)")
    print(means.round(2).to_markdown())
    for key, rows in controls[controls["condition"] == "attnlrp"].groupby("model", sort=False):
        print(f"\n### {key}: mean share of the part's |relevance| per depth 1..N (AttnLRP)")
        for part, part_rows in rows.groupby("part", sort=False):
            profile = np.mean(np.stack(part_rows["profile"].map(np.asarray).tolist()), axis=0)
            print(f"{part:9s}", " ".join(f"{x:.3f}" for x in profile))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", nargs="+", default=DEFAULT_MODELS, help="KEY=DIR (registry key = snapshot)")
    parser.add_argument("--items", type=int, default=3)
    parser.add_argument("--scan", type=int, default=8, help="items generated to choose them from")
    parser.add_argument("--question-lang", default="de")
    parser.add_argument("--format", choices=["v1", "v2"], default="v2")
    parser.add_argument("--layout", choices=["compact", "paper"], default="compact")
    parser.add_argument("--out", type=Path, help="folder for conservation.csv and mrd_control.csv")
    args = parser.parse_args()
    table, _ = prepare(load_local(SUBSET, ["en", args.question_lang]), ["en", args.question_lang])
    conserved, controls = [], []
    for spec in args.model:
        key, _, directory = spec.partition("=")
        c, m = run_model(key, snapshot(key, Path(directory)), args, table)
        conserved.append(c)
        controls.append(m)
    conserved, controls = pd.concat(conserved, ignore_index=True), pd.concat(controls, ignore_index=True)
    report(conserved, controls)
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        conserved.to_csv(args.out / "conservation.csv", index=False)
        controls.assign(profile=controls["profile"].map(lambda p: " ".join(f"{x:.4g}" for x in p))).to_csv(
            args.out / "mrd_control.csv", index=False
        )


if __name__ == "__main__":
    main()
