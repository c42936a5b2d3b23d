"""Commands of the oracle stage: sentence units, attribution (one model), tables, figure."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from xmrc import LANGUAGES
from xmrc.analysis.oracle.ablation import SEQUENCE_TARGETS, STEP_TARGETS
from xmrc.analysis.oracle.regeneration import TargetRule
from xmrc.analysis.oracle.run import format_files, run_oracle, work_items
from xmrc.analysis.oracle.sentences import units_table
from xmrc.analysis.oracle.tables import ITEM_SETS, write_oracle_tables
from xmrc.cli import args as shared
from xmrc.exceptions import XmrcError
from xmrc.extract import EXTRACTIONS
from xmrc.hub.models import local_model_and_weights
from xmrc.io import read_table, write_csv, write_parquet
from xmrc.jobs import job_settings


def _pairs(values: list[str], option: str) -> dict[str, str]:
    """FMT=PATH arguments as a mapping."""
    pairs = {}
    for value in values:
        key, sep, path = value.partition("=")
        if not sep or not key or not path:
            raise XmrcError(f"{option}: expected FORMAT=PATH, got '{value}'")
        pairs[key] = path
    return pairs


def cmd_sentences(args) -> None:
    """split XQuAD contexts into sentence units, mark the gold one"""
    table = read_table(args.data, required=["id", "lang", "context", "answer_text", "answer_start"])
    units, problems = units_table(table, args.languages)
    write_parquet(units, args.out)
    write_csv(problems, args.problems)
    contexts = units.groupby(["id", "lang"]).ngroups
    print(
        f"{args.out}: {len(units)} sentence units in {contexts} contexts "
        f"({len(units) / max(contexts, 1):.1f} per context); {len(problems)} problem(s) in {args.problems}"
    )


def cmd_attribute(args) -> None:
    """sentence-ablation attribution of one model's en-x answers (resumable)"""
    model, weights = local_model_and_weights(args.registry, args.model, args.weights, "attribution")
    prompt_files, generation_files = _pairs(args.prompts, "--prompts"), _pairs(args.generations, "--generations")
    prompt_format, prompts_path, generations_path = format_files(
        read_table(args.summary), model.name, args.summary, prompt_files, generation_files
    )
    prompts = read_table(
        prompts_path,
        required=["id", "context_lang", "question_lang", "prompt", "templated", "context_start", "context_end"],
    )
    generations = read_table(
        generations_path, required=["id", "context_lang", "question_lang", "raw_output", "prediction"]
    )
    units = read_table(args.units, required=["id", "lang", "unit", "start", "end", "is_gold", "sentences"])
    items = work_items(prompts, generations, units, args.question_languages, args.sample_size, args.seed)

    from xmrc.backends.hf import HFBackend  # torch and transformers

    backend = HFBackend(
        weights,
        revision=model.revision,
        dtype=args.dtype,
        batch_size=args.generation_batch_size,
        gpus=max(model.gpus, 1),
        progress=False,
    )
    base = {"model": model.name, "shots": args.shots, "prompt_format": prompt_format}
    result = run_oracle(
        items,
        backend.model,
        backend.tokenizer,
        Path(args.out),
        base=base,
        implementation=args.implementation,
        batch_size=args.batch_size,
        max_new_tokens=args.max_new_tokens,
        generation_batch_size=args.generation_batch_size,
        chunk_size=args.chunk_size,
        settings=job_settings(args),
        rule=TargetRule(args.extraction, args.sequence_target, args.step_target),
    )
    ok = result[result["status"] == "ok"]
    print(
        f"{args.out}: {len(result)} items of {model.name} ({prompt_format}, {args.implementation}); "
        f"{len(ok)} attributed in {ok['seconds'].sum():.1f} s; step {100 * ok['step_correct'].mean():.1f}%, "
        f"sequence {100 * ok['sequence_correct'].mean():.1f}% correct"
        if len(ok)
        else f"{args.out}: {len(result)} items of {model.name}; none could be attributed (see column status)"
    )


def cmd_tables(args) -> None:
    """Table 3, per-language oracle tables and oracle vs F1"""
    results = pd.concat([read_table(path) for path in args.attributions], ignore_index=True)
    scores = read_table(args.item_scores) if args.item_scores else None
    paths = write_oracle_tables(results, scores, Path(args.out_dir), args.items)
    print(f"{args.out_dir}: {len(paths)} oracle tables from {len(results)} items")


def cmd_figure(args) -> None:
    """oracle accuracy vs actual F1 per model and direction (PNG)"""
    from xmrc.analysis.oracle.figures import oracle_vs_f1  # matplotlib

    oracle_vs_f1(read_table(args.accuracy), Path(args.out))
    print(f"{args.out}: oracle vs F1 figure")


def register(command) -> None:
    p = command("oracle-sentences", cmd_sentences)
    p.add_argument("--data", required=True, help="XQuAD table (xmrc data)")
    shared.languages(p, default=["en"], help="context languages to split (default: en, the en-x contexts)")
    p.add_argument("--out", required=True)
    p.add_argument(
        "--problems",
        required=True,
        help="CSV of items whose answer crosses a sentence boundary or is not at answer_start",
    )

    p = command("oracle-attribute", cmd_attribute)
    p.add_argument("--units", required=True, help="sentence units (xmrc oracle-sentences)")
    p.add_argument("--summary", required=True, help="summary_<shots>shot.csv: the model's prompt format")
    p.add_argument("--prompts", nargs="+", required=True, metavar="FORMAT=PATH")
    p.add_argument("--generations", nargs="+", required=True, metavar="FORMAT=PATH")
    shared.model(p)
    shared.shots(p, required=False, default=2)
    p.add_argument(
        "--question-languages",
        nargs="+",
        default=list(LANGUAGES),
        choices=LANGUAGES,
        metavar="LANG",
        help="en-x directions by question language (en = en-en)",
    )
    p.add_argument("--sample-size", type=int, help="items per direction (default: all)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--implementation", choices=["batched", "captum"], default="batched")
    p.add_argument("--batch-size", type=int, default=16, help="ablated prompts per forward pass (batched)")
    p.add_argument("--generation-batch-size", type=int, default=16)
    p.add_argument("--max-new-tokens", type=int, default=64, help="as in the generation stage")
    shared.dtype(p)
    p.add_argument("--chunk-size", type=int, default=64, help="items per checkpoint shard")
    p.add_argument("--extraction", choices=EXTRACTIONS, default="first_line", help="protocol.extraction")
    p.add_argument(
        "--sequence-target", choices=SEQUENCE_TARGETS, default="eos", help="protocol.oracle_sequence: eos | answer"
    )
    p.add_argument(
        "--step-target",
        choices=STEP_TARGETS,
        default="answer_token",
        help="protocol.oracle_step: answer_token (after a self-written label) | first_step",
    )
    p.add_argument("--out", required=True)

    p = command("oracle-tables", cmd_tables)
    p.add_argument("--attributions", nargs="+", required=True)
    p.add_argument("--item-scores", help="item_scores.parquet: F1 of the same items")
    p.add_argument(
        "--items", choices=ITEM_SETS, default="common", help="protocol.oracle_items: one item set for all models"
    )
    p.add_argument("--out-dir", required=True)

    p = command("oracle-figure", cmd_figure)
    p.add_argument("--accuracy", required=True, help="oracle_vs_f1.csv (xmrc oracle-tables)")
    p.add_argument("--out", required=True)
