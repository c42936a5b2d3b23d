"""Commands of the layer-wise analysis: sample groups, AttnLRP relevance (MRD), pooled hidden states
(similarity), their tables and figures."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from xmrc.analysis.layers.conservation import summary_line
from xmrc.analysis.layers.groups import ITEM_COLUMNS, sample_models
from xmrc.analysis.layers.hidden_states import run_hidden_states
from xmrc.analysis.layers.inputs import ExtractionJob, group_ids, load_model, prompt_rows
from xmrc.analysis.layers.mrd import group_mrd_table
from xmrc.analysis.layers.relevance import NORMALIZATIONS, TOKEN_COLUMNS, check_lxt_support, lxt_rules, run_relevance
from xmrc.analysis.layers.similarity import similarity_of_runs
from xmrc.cli import args as shared
from xmrc.config import Registry
from xmrc.exceptions import XmrcError
from xmrc.hub.models import local_model_and_weights
from xmrc.io import read_table, write_csv, write_parquet
from xmrc.jobs import job_settings

PART_CHOICES = ("question", "context", "last")
ITEM_SCORES_HELP = "per-item score tables (the run's item_scores.parquet, score files of other models)"
MEMBER_COLUMNS = ["model", "model_name", "shots", "prompt_format", "group", "id", "fallback"]


def cmd_layer_groups(args) -> None:
    """balanced / en-superior sample groups from per-item F1"""
    items = pd.concat([read_table(path, required=ITEM_COLUMNS) for path in args.item_scores], ignore_index=True)
    registry = Registry.load(args.registry)
    members, sizes = sample_models(
        items,
        [registry.get(key) for key in args.models],
        args.shots,
        args.formats,
        args.languages,
        args.groups,
        args.cap,
        args.seed,
    )
    write_parquet(members, args.out_members)
    write_csv(sizes, args.out_sizes, float_format="%.6g")
    for row in sizes.itertuples():
        note = " (fallback: all items)" if row.fallback else ""
        print(
            f"{row.model_name} {row.shots}-shot {row.prompt_format} {row.group}: {row.eligible} eligible, "
            f"{row.selected} selected{note}"
        )


def _model_job(args):
    """(model, weights, en-x prompt rows of the grouped items with the model's outputs) for one extraction job."""
    model, weights = local_model_and_weights(args.registry, args.model, args.weights, "the layer analysis")
    members = read_table(args.groups, required=["model", "shots", "prompt_format", "id"])
    ids = group_ids(members, model.key, args.shots, args.format, args.groups)
    rows = prompt_rows(
        read_table(args.prompts), ids, args.languages, args.prompts, read_table(args.generations), args.generations
    )
    return model, weights, rows


def _extraction_job(args, model) -> ExtractionJob:
    return ExtractionJob(
        model.key,
        args.shots,
        args.format,
        args.batch_size,
        args.chunk_size,
        job_settings(args),
        extraction=args.extraction,
        normalization=getattr(args, "mrd_relevance", "logit"),
    )


def cmd_layer_relevance(args) -> None:
    """AttnLRP (LXT) relevance per layer and part MRD (resumable)"""
    if args.examples < 0:
        raise XmrcError(f"--examples must be 0 or more, got {args.examples}")
    model, weights, rows = _model_job(args)
    check_lxt_support(weights, model.revision)
    network, tokenizer = load_model(weights, model.revision, args.dtype, max(model.gpus, 1))
    lxt_rules(network)
    job = _extraction_job(args, model)
    result = run_relevance(
        rows, network, tokenizer, Path(args.out), job, examples=args.examples, tokens_output=Path(args.out_tokens)
    )
    explained = result.drop_duplicates(["context_lang", "question_lang", "id"])["target_status"].value_counts()
    print(
        f"{args.out}: AttnLRP relevance of {len(rows)} prompts ({len(result)} part rows), "
        f"N = {int(result['layers'].max()) if len(result) else 0} layers; explained token: "
        + ", ".join(f"{status} {count}" for status, count in explained.items())
    )
    conserved = summary_line(result)
    if conserved:
        print(f"{args.out}: AttnLRP conservation, {conserved}")


def cmd_layer_hidden(args) -> None:
    """pooled hidden states per part and layer, float16 (resumable)"""
    model, weights, rows = _model_job(args)
    network, tokenizer = load_model(weights, model.revision, args.dtype, max(model.gpus, 1))
    job = _extraction_job(args, model)
    count, shape = run_hidden_states(rows, network, tokenizer, Path(args.out_vectors), Path(args.out_index), job)
    size = Path(args.out_vectors).stat().st_size
    print(f"{args.out_vectors}: pooled hidden states {shape} float16 of {count} prompts, {size / 1e6:.1f} MB")


def cmd_layer_mrd(args) -> None:
    """mean MRD per model, group, language and part (CSV)"""
    relevance = pd.concat([read_table(path) for path in args.relevance], ignore_index=True)
    table = group_mrd_table(relevance, read_table(args.groups, required=MEMBER_COLUMNS))
    write_csv(table, args.out, float_format="%.6g")
    print(f"{args.out}: mean MRD of {len(table)} (model, group, language, part) cells")


def cmd_layer_similarity(args) -> None:
    """cross-lingual similarity ratio per layer (CSV)"""
    table = similarity_of_runs(args.vectors, args.index, read_table(args.groups, required=MEMBER_COLUMNS))
    write_csv(table, args.out, float_format="%.6g")
    print(f"{args.out}: {len(table)} similarity ratios")


def cmd_layer_figures(args) -> None:
    """MRD and similarity figures of one model and setting"""
    from xmrc.analysis.layers import figures as layer_figures  # matplotlib and seaborn

    mrd = read_table(
        args.mrd, required=["model", "shots", "prompt_format", "group", "question_lang", "part", "mean_mrd"]
    )
    similarity = read_table(
        args.similarity,
        required=["model", "shots", "prompt_format", "group", "lang", "part", "relative_depth", "ratio"],
    )
    mrd_paths = {
        ("context", "question"): args.out_mrd_context_question,
        ("task_description", "demonstrations"): args.out_mrd_task_demos,
    }
    similarity_paths = {part: getattr(args, f"out_similarity_{part}") for part in PART_CHOICES}
    paths = layer_figures.setting_figures(
        mrd, similarity, read_table(args.sizes), args.model, args.shots, args.format, mrd_paths, similarity_paths
    )
    print(f"{args.model}: {len(paths)} layer-analysis figures")


def cmd_layer_example_figure(args) -> None:
    """attribution example: top tokens of each prompt part by relevance, per layer (paper Figure 11)"""
    from xmrc.analysis.layers.attribution_example import draw  # matplotlib and seaborn

    draw(read_table(args.tokens, required=TOKEN_COLUMNS), args.top, args.out)
    print(f"{args.out}: attribution example, top {args.top} tokens per part")


def cmd_layer_change_figures(args) -> None:
    """similarity curves of a model series (base, instruct, tuned) and their change"""
    from xmrc.analysis.layers import figures as layer_figures  # matplotlib and seaborn

    similarity = read_table(args.similarity)
    for part in PART_CHOICES:
        layer_figures.similarity_change(
            similarity, args.models, args.shots, args.format, part, getattr(args, f"out_{part}"), args.group
        )
    print(f"similarity change across {', '.join(args.models)}: 3 figures")


def register(command) -> None:
    p = command("layer-groups", cmd_layer_groups)
    p.add_argument("--item-scores", nargs="+", required=True, help=ITEM_SCORES_HELP)
    p.add_argument("--registry", required=True)
    p.add_argument("--models", nargs="+", required=True, help="registry keys or paper names")
    shared.setting(p, several_formats=True)
    shared.languages(p)
    p.add_argument("--groups", nargs="+", choices=["balanced", "en-superior"], default=["balanced", "en-superior"])
    p.add_argument("--cap", type=int, help="at most this many items per group (seeded draw)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out-members", required=True)
    p.add_argument("--out-sizes", required=True)

    def extraction(p, default_batch):
        p.add_argument("--prompts", required=True)
        p.add_argument(
            "--generations", required=True, help="the model's generations of the setting: where each answer starts"
        )
        p.add_argument("--groups", required=True, help="groups.parquet of layer-groups")
        shared.model(p)
        shared.setting(p)
        shared.languages(p)
        shared.dtype(p)
        p.add_argument("--batch-size", type=int, default=default_batch)
        p.add_argument("--chunk-size", type=int, default=64, help="prompts per checkpoint shard")
        shared.extraction(p)

    p = command("layer-relevance", cmd_layer_relevance)
    extraction(p, 1)
    p.add_argument("--mrd-relevance", choices=NORMALIZATIONS, default="logit", help="protocol.mrd_relevance")
    p.add_argument("--examples", type=int, default=1, help="items whose per-token relevance is kept (first ones)")
    p.add_argument("--out", required=True)
    p.add_argument("--out-tokens", required=True, help="per-token relevance of the example items")

    p = command("layer-hidden", cmd_layer_hidden)
    extraction(p, 8)
    shared.required_paths(p, "--out-vectors", "--out-index")

    p = command("layer-mrd", cmd_layer_mrd)
    p.add_argument("--relevance", nargs="+", required=True)
    shared.required_paths(p, "--groups", "--out")

    p = command("layer-similarity", cmd_layer_similarity)
    p.add_argument("--vectors", nargs="+", required=True)
    p.add_argument("--index", nargs="+", required=True)
    shared.required_paths(p, "--groups", "--out")

    p = command("layer-figures", cmd_layer_figures)
    p.add_argument("--mrd", required=True)
    p.add_argument("--similarity", required=True)
    p.add_argument("--sizes", required=True, help="group_sizes.csv of layer-groups")
    p.add_argument("--model", required=True, help="registry key")
    shared.setting(p)
    for name in (
        "mrd-context-question",
        "mrd-task-demos",
        "similarity-question",
        "similarity-context",
        "similarity-last",
    ):
        p.add_argument(f"--out-{name}", required=True)

    p = command("layer-example-figure", cmd_layer_example_figure)
    p.add_argument("--tokens", required=True, help="per-token relevance (layer-relevance --out-tokens)")
    p.add_argument("--top", type=int, default=3, help="tokens shown per prompt part")
    p.add_argument("--out", required=True)

    p = command("layer-change-figures", cmd_layer_change_figures)
    p.add_argument("--similarity", required=True)
    p.add_argument("--models", nargs="+", required=True, help="registry keys, first = reference")
    shared.setting(p)
    p.add_argument("--group", choices=["balanced", "en-superior"], default="balanced")
    for part in PART_CHOICES:
        p.add_argument(f"--out-{part}", required=True)
