"""Commands of the main study: check-config, data, tiny-model, prompts, score, aggregate, tables, figures,
report-tables."""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

from xmrc import data, dataset_registry
from xmrc.cli import args as shared
from xmrc.config import Registry, load_config
from xmrc.exceptions import XmrcError
from xmrc.hub.models import chat_template, model_and_weights
from xmrc.io import read_table, write_csv, write_parquet
from xmrc.prompts import DATA_COLUMNS, FORMATS, PAPER_SCENARIOS, SCENARIOS, build_prompt_table, read_ids
from xmrc.report_tables import write_pages
from xmrc.scoring import GENERATION_COLUMNS, score_table
from xmrc.tables import direction_scores, write_run_tables
from xmrc.tinymodels import build_registry_model


def cmd_check_config(args) -> None:
    """validate a run config and its registry"""
    config = load_config(args.config)
    models = Registry.load(config["registry"]).select(config["models"])
    dataset = dataset_registry.for_config(config)
    print(
        f"{args.config}: valid; run '{config['run']}', {dataset.name}, {len(models)} models, "
        f"{len(config['languages'])} languages, shots {config['shots']}, formats {config['prompt_formats']}"
    )


def cmd_data(args) -> None:
    """obtain a dataset (XQuAD, MLQA), validate it, write one Parquet table"""
    dataset = dataset_registry.get(args.dataset, args.datasets)
    dataset.check_languages(args.languages, "languages")
    if args.source == "local" and not args.local_dir:
        raise XmrcError("--local-dir is required with --source local")

    split = args.split or dataset.evaluation_split
    if args.source == "local":
        table = data.load_local(Path(args.local_dir), args.languages, dataset, split)
    else:
        table = data.load_hub(args.hub_id, args.languages, args.revision, dataset, split)
    table, problems = data.prepare(table, args.languages, dataset, args.split)
    write_parquet(table, args.out)
    write_csv(data.problems_table(problems), args.problems)
    for kind in sorted({problem.kind for problem in problems}):
        print(f"xmrc: warning: {dataset.name} {data.describe(problems, kind)}", file=sys.stderr)
    print(
        f"{args.out}: {table['id'].nunique()} items x {table['lang'].nunique()} languages ({dataset.name} "
        f"{split}); {len(problems)} problem(s) reported in {args.problems}"
    )


def cmd_tiny_model(args) -> None:
    """build a tiny random model of a real architecture"""
    model = Registry.load(args.registry).get(args.model)
    spec = build_registry_model(model, read_table(args.data), args.out)
    print(f"{args.out}: tiny {spec['architecture']} ({model.mode}) built")


def cmd_prompts(args) -> None:
    """build the prompts of one (model, shots, format) for all directions"""
    if args.demonstration_data and args.alignment == "parallel":
        raise XmrcError(
            "--demonstration-data: only with --alignment by_direction (a parallel dataset's "
            "demonstrations are items of --data)"
        )
    model, weights = model_and_weights(args.registry, args.model, args.weights)
    layout = shared.layout_of(args)
    template = chat_template(model, weights, layout.system_prompt)
    table = read_table(args.data, required=DATA_COLUMNS)
    ids = read_ids(args.ids) if args.ids else None
    demonstration_table = (
        read_table(args.demonstration_data, required=DATA_COLUMNS) if args.demonstration_data else None
    )
    prompts = build_prompt_table(
        table,
        args.languages,
        args.shots,
        args.format,
        args.demonstrations,
        template,
        args.max_items,
        ids,
        args.scenarios,
        args.alignment,
        demonstration_table,
        layout,
    )
    write_parquet(prompts, args.out)
    print(f"{args.out}: {len(prompts)} prompts for {model.name}, {args.shots}-shot {args.format}")


def cmd_score(args) -> None:
    """F1/EM of every generation against its gold answer"""
    scored = score_table(read_table(args.generations, required=GENERATION_COLUMNS), args.normalization)
    write_parquet(scored, args.out)
    print(
        f"{args.out}: {len(scored)} items scored ({args.normalization}); mean F1 {100 * scored['f1'].mean():.2f}"
        if len(scored)
        else f"{args.out}: no items"
    )


def cmd_aggregate(args) -> None:
    """per-direction scores from per-item scores"""
    items = pd.concat([read_table(path) for path in args.scores], ignore_index=True)
    write_parquet(items, args.out_items)
    scores = direction_scores(items)
    write_csv(scores, args.out_csv, float_format="%.4f")
    print(f"{args.out_csv}: {len(scores)} directions from {len(args.scores)} score files")


def cmd_tables(args) -> None:
    """summary and per-language tables (CSV and Markdown)"""
    paths = write_run_tables(
        read_table(args.direction_scores),
        Path(args.out_dir),
        args.format_criterion,
        args.not_in_summary,
        args.format_choice,
        shared.paper_row_filter(args),
    )
    print(f"{args.out_dir}: {len(paths)} tables")


def cmd_figures(args) -> None:
    """one figure (PNG): F1 heatmap, en-x vs x-x means, or one model's context x question F1 matrix"""
    from xmrc import figures  # matplotlib and seaborn: not for every command's start

    scores = read_table(args.direction_scores)
    if args.kind == "heatmap":
        figures.heatmap(scores, args.scenario, args.shots, Path(args.out), args.format_criterion, args.format_choice)
    elif args.kind == "matrix":
        if not args.model or not args.format:
            raise XmrcError("figures --kind matrix needs --model and --format (one model and setting)")
        figures.direction_matrix(scores, args.model, args.shots, args.format, Path(args.out))
    else:
        from xmrc.intervals import read_scenario_intervals

        intervals = read_scenario_intervals(args.intervals) if args.intervals else None
        figures.means_chart(scores, args.shots, Path(args.out), args.format_criterion, args.format_choice, intervals)
    print(f"{args.out}: {args.kind} figure")


def cmd_report_tables(args) -> None:
    """a run's main tables as HTML pages (items of the HTML report)"""
    paths = write_pages(args.tables_dir, args.stems, args.out_dir)
    print(f"{args.out_dir}: {len(paths)} tables as HTML pages for the report")


def register(command) -> None:
    p = command("check-config", cmd_check_config)
    p.add_argument("config")

    p = command("data", cmd_data)
    p.add_argument("--dataset", default="xquad", help="key in the dataset registry (default: xquad)")
    p.add_argument(
        "--datasets",
        default=str(dataset_registry.DEFAULT_REGISTRY),
        help="dataset registry YAML (default: config/datasets.yaml of this checkout)",
    )
    p.add_argument("--source", choices=["hub", "local"], required=True)
    p.add_argument("--hub-id", help="hub dataset id (default: the registry's)")
    p.add_argument("--revision")
    p.add_argument(
        "--local-dir",
        help="directory of the dataset's own JSON files (XQuAD: xquad.<lang>.json; "
        "MLQA: the MLQA_V1 folder, test/test-context-<lang>-question-<lang>.json, dev/dev-...)",
    )
    shared.languages(p)
    p.add_argument("--out", required=True)
    p.add_argument("--problems", required=True, help="CSV report of data problems, by id")
    p.add_argument(
        "--split",
        help="split to load (default: the registry's evaluation split; the demonstration "
        "split, e.g. MLQA's validation, for k-shot demonstrations)",
    )

    p = command("tiny-model", cmd_tiny_model)
    shared.model(p, weights=False)
    p.add_argument("--data", required=True, help="XQuAD table: the tokenizer is trained on it")
    p.add_argument("--out", required=True)

    p = command("prompts", cmd_prompts)
    p.add_argument("--data", required=True)
    shared.model(p)
    shared.setting(p)
    shared.languages(p)
    p.add_argument(
        "--demonstrations",
        nargs="*",
        default=[],
        metavar="ID",
        help="demonstration ids: k-shot uses the first k (at least k needed)",
    )
    p.add_argument(
        "--scenarios",
        nargs="+",
        choices=list(SCENARIOS),
        default=list(PAPER_SCENARIOS),
        help="which directions get prompts: en-x, x-x (the paper's), x-y (every language pair)",
    )
    p.add_argument(
        "--alignment",
        choices=["parallel", "by_direction"],
        default="parallel",
        help="how items align across languages (dataset registry key alignment)",
    )
    p.add_argument("--demonstration-data", help="table of the demonstration split (default: --data)")
    p.add_argument("--max-items", type=int)
    p.add_argument("--ids", help="evaluate only these ids (text file, one per line), e.g. held-out articles")
    shared.prompt_protocol(p)
    p.add_argument("--out", required=True)

    p = command("score", cmd_score)
    p.add_argument("--generations", required=True)
    p.add_argument("--normalization", choices=["mlqa", "squad"], default="mlqa")
    p.add_argument("--out", required=True)

    p = command("aggregate", cmd_aggregate)
    p.add_argument("--scores", nargs="+", required=True)
    shared.required_paths(p, "--out-csv", "--out-items")

    p = command("tables", cmd_tables)
    p.add_argument("--direction-scores", required=True)
    shared.format_criterion(p)
    shared.not_in_summary(p)
    shared.paper_rows(p)
    p.add_argument("--out-dir", required=True)

    p = command("figures", cmd_figures)
    p.add_argument("--direction-scores", required=True)
    p.add_argument("--kind", choices=["heatmap", "means", "matrix"], required=True)
    shared.shots(p)
    p.add_argument("--scenario", choices=["en-x", "x-x", "x-y"], default="en-x", help="heatmap: its directions")
    p.add_argument("--model", help="matrix: the model (its name in the direction scores)")
    p.add_argument("--format", choices=list(FORMATS), help="matrix: the prompt format")
    shared.format_criterion(p)
    p.add_argument(
        "--intervals", help="means: scenario_intervals.csv of the intervals stage, drawn as error bars (optional)"
    )
    p.add_argument("--out", required=True)

    p = command("report-tables", cmd_report_tables)
    p.add_argument("--tables-dir", required=True, help="results/<run>/tables")
    p.add_argument("--stems", nargs="+", required=True, help="tables (paths under --tables-dir, without .csv)")
    p.add_argument("--out-dir", required=True, help="results/<run>/report: <stem>.html per table")
