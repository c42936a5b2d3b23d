"""Commands of the layer-wise analysis: sample groups, AttnLRP relevance (MRD), pooled hidden states
(similarity), their tables and figures."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from xmrc.analysis.layers.conservation import conservation_table, summary_line
from xmrc.analysis.layers.groups import BEST, ITEM_COLUMNS, chosen_formats, sample_models, setting_format
from xmrc.analysis.layers.hidden_states import run_hidden_states
from xmrc.analysis.layers.inputs import ExtractionJob, group_ids, load_model, prompt_rows
from xmrc.analysis.layers.mrd import group_mrd_table
from xmrc.analysis.layers.relevance import NORMALIZATIONS, TOKEN_COLUMNS, check_lxt_support, lxt_rules, run_relevance
from xmrc.analysis.layers.similarity import similarity_of_runs
from xmrc.cli import args as shared
from xmrc.config import Registry
from xmrc.exceptions import XmrcError
from xmrc.hub.models import local_model_and_weights
from xmrc.io import read_parquet, read_table, write_csv, write_parquet
from xmrc.jobs import job_settings
from xmrc.prompts import FORMATS
from xmrc.tables import criterion_text

PART_CHOICES = ("question", "context", "last")
ITEM_SCORES_HELP = "per-item score tables (the run's item_scores.parquet, score files of other models)"
MEMBER_COLUMNS = ["model", "model_name", "shots", "prompt_format", "group", "id", "fallback"]
RELEVANCE_KEY = ["model", "shots", "prompt_format", "context_lang", "question_lang", "id", "part"]
# A layers setting's format: v1, v2, or best (each model's format chosen by the tables' criterion).
SETTING_FORMATS = [*FORMATS, BEST]


def cmd_layer_groups(args) -> None:
    """balanced / en-superior sample groups from per-item F1"""
    items = pd.concat([read_table(path, required=ITEM_COLUMNS) for path in args.item_scores], ignore_index=True)
    registry = Registry.load(args.registry)
    models = [registry.get(key) for key in args.models]
    chosen = None
    if BEST in args.formats:
        chosen = chosen_formats(items, args.shots, args.format_criterion, args.format_choice)
        rule = criterion_text(args.format_criterion, args.format_choice, items["shots"].unique())
        for model in models:
            if model.name in chosen:
                print(f"{model.name} {args.shots}-shot: best format {chosen[model.name]} ({rule})")
    members, sizes = sample_models(
        items, models, args.shots, args.formats, args.languages, args.groups, args.cap, args.seed, chosen
    )
    write_parquet(members, args.out_members)
    write_csv(sizes, args.out_sizes, float_format="%.6g")
    for row in sizes.itertuples():
        note = " (fallback: all items)" if row.fallback else ""
        print(
            f"{row.model_name} {row.shots}-shot {row.prompt_format} {row.group}: {row.eligible} eligible, "
            f"{row.selected} selected{note}"
        )


def format_path(values: list[str], prompt_format: str, option: str) -> str:
    """The file of `prompt_format` among an option's values: one PATH (the setting's own), or FORMAT=PATH
    pairs (a `best` setting is given every format's file; the job picks the chosen one)."""
    if len(values) == 1 and "=" not in values[0]:
        return values[0]
    pairs = {}
    for value in values:
        name, sep, path = value.partition("=")
        if not sep or not name or not path:
            raise XmrcError(f"{option}: expected PATH or FORMAT=PATH pairs, got '{value}'")
        pairs[name] = path
    if prompt_format not in pairs:
        raise XmrcError(f"{option}: no file of format {prompt_format} (given: {', '.join(pairs)})")
    return pairs[prompt_format]


def _model_job(args):
    """(model, weights, prompt format, en-x prompt rows of the grouped items with the model's outputs) for one
    extraction job; a `best` setting's format is the one layer-groups chose for the model."""
    model, weights = local_model_and_weights(args.registry, args.model, args.weights, "the layer analysis")
    members = read_table(args.groups, required=["model", "shots", "prompt_format", "id"])
    prompt_format = setting_format(members, model.key, args.shots, args.format, args.groups)
    ids = group_ids(members, model.key, args.shots, prompt_format, args.groups)
    prompts = format_path(args.prompts, prompt_format, "--prompts")
    generations = format_path(args.generations, prompt_format, "--generations")
    rows = prompt_rows(read_table(prompts), ids, args.languages, prompts, read_table(generations), generations)
    return model, weights, prompt_format, rows


def _extraction_job(args, model, prompt_format: str) -> ExtractionJob:
    return ExtractionJob(
        model.key,
        args.shots,
        prompt_format,
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
    model, weights, prompt_format, rows = _model_job(args)
    check_lxt_support(weights, model.revision)
    network, tokenizer = load_model(weights, model.revision, args.dtype, max(model.gpus, 1))
    lxt_rules(network)
    job = _extraction_job(args, model, prompt_format)
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


def cmd_layer_conservation(args) -> None:
    """AttnLRP conservation per depth of relevance tables: relevance summed over the prompt against the
    explained logit (CSV)"""
    relevance = pd.concat([read_parquet(path) for path in args.relevance], ignore_index=True)
    table = conservation_table(relevance)
    write_csv(table, args.out, float_format="%.4f")
    print(f"{args.out}: {len(table)} depths; {summary_line(relevance) or 'nothing explained'}")


def cmd_layer_hidden(args) -> None:
    """pooled hidden states per part and layer, float16 (resumable)"""
    model, weights, prompt_format, rows = _model_job(args)
    network, tokenizer = load_model(weights, model.revision, args.dtype, max(model.gpus, 1))
    job = _extraction_job(args, model, prompt_format)
    count, shape = run_hidden_states(rows, network, tokenizer, Path(args.out_vectors), Path(args.out_index), job)
    size = Path(args.out_vectors).stat().st_size
    print(f"{args.out_vectors}: pooled hidden states {shape} float16 of {count} prompts, {size / 1e6:.1f} MB")


def cmd_layer_mrd(args) -> None:
    """mean MRD per model, group, language and part (CSV)"""
    relevance = pd.concat([read_table(path) for path in args.relevance], ignore_index=True)
    # a model's best format also named (layers.prompt_formats [best, v1]): the same rows twice, counted once
    relevance = relevance.drop_duplicates(RELEVANCE_KEY)
    table = group_mrd_table(relevance, read_table(args.groups, required=MEMBER_COLUMNS))
    write_csv(table, args.out, float_format="%.6g")
    print(f"{args.out}: mean MRD of {len(table)} (model, group, language, part) cells")


def cmd_layer_similarity(args) -> None:
    """cross-lingual similarity ratio per layer, raw and mean-centred (CSV), and each item's paired cosines"""
    table, items = similarity_of_runs(args.vectors, args.index, read_table(args.groups, required=MEMBER_COLUMNS))
    write_csv(table, args.out, float_format="%.6g")
    write_parquet(items, args.out_items)
    print(f"{args.out}: {len(table)} similarity ratios (raw and centred); {args.out_items}: {len(items)} item cosines")


def cmd_layer_figures(args) -> None:
    """MRD and similarity figures of one model and setting"""
    from xmrc.analysis.layers import figures as layer_figures  # matplotlib and seaborn

    mrd = read_table(
        args.mrd, required=["model", "shots", "prompt_format", "group", "question_lang", "part", "mean_mrd"]
    )
    similarity = read_table(args.similarity, required=SIMILARITY_FIGURE_COLUMNS)
    sizes = read_table(args.sizes)
    prompt_format = setting_format(sizes, args.model, args.shots, args.format, args.sizes)
    mrd_paths = {
        ("context", "question"): args.out_mrd_context_question,
        ("task_description", "demonstrations"): args.out_mrd_task_demos,
    }
    similarity_paths = {part: getattr(args, f"out_similarity_{part}") for part in PART_CHOICES}
    paths = layer_figures.setting_figures(
        mrd, similarity, sizes, args.model, args.shots, prompt_format, mrd_paths, similarity_paths
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

    similarity = read_table(args.similarity, required=SIMILARITY_FIGURE_COLUMNS)
    if args.format == BEST and not args.sizes:
        raise XmrcError("--sizes is required with --format best (each model's chosen format)")
    sizes = read_table(args.sizes) if args.sizes else None
    formats = {model: setting_format(sizes, model, args.shots, args.format, args.sizes) for model in args.models}
    for part in PART_CHOICES:
        layer_figures.similarity_change(
            similarity, args.models, args.shots, formats, part, getattr(args, f"out_{part}"), args.group
        )
    print(f"similarity change across {', '.join(args.models)}: 3 figures")


FILES_HELP = (
    "the model's prompt table of the setting, or FORMAT=PATH for each format (--format best: the one "
    "layer-groups chose is read)"
)
SIMILARITY_FIGURE_COLUMNS = [
    "model",
    "shots",
    "prompt_format",
    "group",
    "lang",
    "part",
    "relative_depth",
    "ratio",
    "sample_cos",
    "language_cos",
    "ratio_centred",
    "sample_cos_centred",
    "language_cos_centred",
]


def layer_setting(p) -> None:
    """--shots and --format of a layers setting: a format, or best (the format layer-groups chose)."""
    shared.shots(p)
    p.add_argument(
        "--format",
        choices=SETTING_FORMATS,
        required=True,
        help=f"{BEST}: the model's format chosen by the tables' criterion (from layer-groups' output)",
    )


def register(command) -> None:
    p = command("layer-conservation", cmd_layer_conservation)
    p.add_argument("--relevance", nargs="+", required=True, help="relevance tables of layer-relevance")
    p.add_argument("--out", required=True, help="CSV: per model, setting and depth, the ratio's median and range")

    p = command("layer-groups", cmd_layer_groups)
    p.add_argument("--item-scores", nargs="+", required=True, help=ITEM_SCORES_HELP)
    p.add_argument("--registry", required=True)
    p.add_argument("--models", nargs="+", required=True, help="registry keys or paper names")
    shared.shots(p)
    p.add_argument(
        "--formats", nargs="+", choices=SETTING_FORMATS, required=True, help=f"{BEST}: each model's chosen format"
    )
    shared.format_criterion(p)
    shared.languages(p)
    p.add_argument("--groups", nargs="+", choices=["balanced", "en-superior"], default=["balanced", "en-superior"])
    p.add_argument("--cap", type=int, help="at most this many items per group (seeded draw)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out-members", required=True)
    p.add_argument("--out-sizes", required=True)

    def extraction(p, default_batch):
        p.add_argument("--prompts", nargs="+", required=True, metavar="[FORMAT=]PATH", help=FILES_HELP)
        p.add_argument(
            "--generations",
            nargs="+",
            required=True,
            metavar="[FORMAT=]PATH",
            help="the model's generations of the setting: where each answer starts (as --prompts)",
        )
        p.add_argument("--groups", required=True, help="groups.parquet of layer-groups")
        shared.model(p)
        layer_setting(p)
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
    p.add_argument("--out-items", required=True, help="per-item paired cosines (similarity_items.parquet)")

    p = command("layer-figures", cmd_layer_figures)
    p.add_argument("--mrd", required=True)
    p.add_argument("--similarity", required=True)
    p.add_argument("--sizes", required=True, help="group_sizes.csv of layer-groups")
    p.add_argument("--model", required=True, help="registry key")
    layer_setting(p)
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
    layer_setting(p)
    p.add_argument("--sizes", help="group_sizes.csv of layer-groups (for --format best)")
    p.add_argument("--group", choices=["balanced", "en-superior"], default="balanced")
    for part in PART_CHOICES:
        p.add_argument(f"--out-{part}", required=True)
