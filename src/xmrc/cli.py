"""`xmrc`: the command line the workflow's rules call, one subcommand per step.

Every user-facing problem ends as one line `xmrc: error: ...` on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

import pandas as pd

from xmrc import LANGUAGES, __version__
from xmrc.exceptions import XmrcError
from xmrc.io import read_parquet, write_parquet
from xmrc.prompts import FORMATS, PAPER_SCENARIOS, SCENARIOS


def shots_count(text: str) -> int:
    """--shots: any k >= 0 (whether k demonstrations are configured is checked where they are read)."""
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of shots (an integer >= 0)")
    return int(text)


def _read_parquet(path: str) -> pd.DataFrame:
    try:
        return read_parquet(path)
    except FileNotFoundError:
        raise XmrcError(f"{path}: file not found") from None
    except Exception as error:
        raise XmrcError(f"{path}: not a readable Parquet table ({type(error).__name__})") from None


def _read_csv(path: str) -> pd.DataFrame:
    try:
        return pd.read_csv(path)
    except FileNotFoundError:
        raise XmrcError(f"{path}: file not found") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        raise XmrcError(f"{path}: not a readable CSV table ({type(error).__name__})") from None


def _require_columns(frame: pd.DataFrame, columns: list[str], path: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise XmrcError(f"{path}: missing column(s) {', '.join(missing)}")


def cmd_check_config(args) -> None:
    from xmrc import dataset_registry
    from xmrc.config import Registry, load_config

    config = load_config(args.config)
    registry = Registry.load(config["registry"])
    models = registry.select(config["models"])
    dataset = dataset_registry.for_config(config)
    print(f"{args.config}: valid; run '{config['run']}', {dataset.name}, {len(models)} models, "
          f"{len(config['languages'])} languages, shots {config['shots']}, formats {config['prompt_formats']}")


def cmd_data(args) -> None:
    from xmrc import data, dataset_registry

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
    write_parquet(table, Path(args.out))
    report = pd.DataFrame([p.__dict__ for p in problems], columns=["id", "lang", "kind", "detail"])
    report.to_csv(args.problems, index=False)
    for kind in sorted(set(report["kind"])):
        print(f"xmrc: warning: {dataset.name} {data.describe(problems, kind)}", file=sys.stderr)
    print(f"{args.out}: {table['id'].nunique()} items x {table['lang'].nunique()} languages ({dataset.name} "
          f"{split}); {len(problems)} problem(s) reported in {args.problems}")


def _corpus(table: pd.DataFrame) -> list[str]:
    return list(pd.unique(table["context"])) + table["question"].tolist()


def cmd_tiny_model(args) -> None:
    from xmrc.config import Registry
    from xmrc.tinymodels import build_from_spec

    model = Registry.load(args.registry).get(args.model)
    if model.source != "tiny":
        raise XmrcError(f"model '{model.key}' is not a tiny model (source: {model.source})")
    spec = dict(model.tiny, chat=model.mode == "chat")
    build_from_spec(spec, _corpus(_read_parquet(args.data)), Path(args.out))
    print(f"{args.out}: tiny {spec['architecture']} ({model.mode}) built")


def _model_and_weights(args):
    from xmrc.config import Registry, model_weights

    model = Registry.load(args.registry).get(args.model)
    return model, args.weights or model_weights(model)


def _as_user_turn(text: str) -> str:
    return text


def cmd_prompts(args) -> None:
    from xmrc.prompts import build_prompt_table, hf_chat_template

    if args.demonstration_data and args.alignment == "parallel":
        raise XmrcError("--demonstration-data: only with --alignment by_direction (a parallel dataset's "
                        "demonstrations are items of --data)")
    model, weights = _model_and_weights(args)
    chat_template = None
    if model.chat_template and model.backend == "local":
        from xmrc.backends.hf import load_tokenizer

        chat_template = hf_chat_template(load_tokenizer(weights, model.revision))
    elif model.chat_template:
        chat_template = _as_user_turn  # the API applies its own template to the user message
    table = _read_parquet(args.data)
    _require_columns(table, ["id", "lang", "context", "question", "answer_text"], args.data)
    ids = None
    if args.ids:
        try:
            ids = Path(args.ids).read_text(encoding="utf-8").split()
        except FileNotFoundError:
            raise XmrcError(f"{args.ids}: id file not found") from None
    scenarios = getattr(args, "scenarios", None) or PAPER_SCENARIOS
    demonstration_table = None
    if args.demonstration_data:
        demonstration_table = _read_parquet(args.demonstration_data)
        _require_columns(demonstration_table, ["id", "lang", "context", "question", "answer_text"],
                         args.demonstration_data)
    prompts = build_prompt_table(table, args.languages, args.shots, args.format, args.demonstrations,
                                 chat_template, args.max_items, ids, scenarios, args.alignment, demonstration_table)
    write_parquet(prompts, Path(args.out))
    print(f"{args.out}: {len(prompts)} prompts for {model.name}, {args.shots}-shot {args.format}")


def cmd_score(args) -> None:
    from xmrc.scoring import score_pairs

    generations = _read_parquet(args.generations)
    _require_columns(generations, ["model", "shots", "prompt_format", "id", "context_lang", "question_lang",
                                   "answer_lang", "gold", "prediction"], args.generations)
    frames = []
    for lang, group in generations.groupby("answer_lang", sort=False):
        em, f1 = score_pairs(group["prediction"].tolist(), group["gold"].tolist(), lang=lang,
                             normalization=args.normalization)
        frames.append(group.assign(em=em, f1=f1))
    scored = pd.concat(frames).sort_index() if frames else generations.assign(em=[], f1=[])
    columns = ["model", "shots", "prompt_format", "context_lang", "question_lang", "id", "em", "f1"]
    write_parquet(scored[columns], Path(args.out))
    print(f"{args.out}: {len(scored)} items scored ({args.normalization}); "
          f"mean F1 {100 * scored['f1'].mean():.2f}" if len(scored) else f"{args.out}: no items")


def cmd_aggregate(args) -> None:
    from xmrc.tables import direction_scores

    items = pd.concat([_read_parquet(path) for path in args.scores], ignore_index=True)
    write_parquet(items, Path(args.out_items))
    scores = direction_scores(items)
    Path(args.out_csv).parent.mkdir(parents=True, exist_ok=True)
    scores.to_csv(args.out_csv, index=False, float_format="%.4f")
    print(f"{args.out_csv}: {len(scores)} directions from {len(args.scores)} score files")


def cmd_tables(args) -> None:
    from xmrc.tables import write_run_tables

    scores = _read_csv(args.direction_scores)
    paths = write_run_tables(scores, Path(args.out_dir), args.format_criterion, args.not_in_summary)
    print(f"{args.out_dir}: {len(paths)} tables")


def cmd_figures(args) -> None:
    from xmrc import figures

    scores = _read_csv(args.direction_scores)
    if args.kind == "heatmap":
        figures.heatmap(scores, args.scenario, args.shots, Path(args.out), args.format_criterion)
    elif args.kind == "matrix":
        if not args.model or not args.format:
            raise XmrcError("figures --kind matrix needs --model and --format (one model and setting)")
        figures.direction_matrix(scores, args.model, args.shots, args.format, Path(args.out))
    else:
        figures.means_chart(scores, args.shots, Path(args.out), args.format_criterion)
    print(f"{args.out}: {args.kind} figure")


def cmd_report_tables(args) -> None:
    from xmrc.report_tables import write_pages

    paths = write_pages(args.tables_dir, args.stems, args.out_dir)
    print(f"{args.out_dir}: {len(paths)} tables as HTML pages for the report")


# Later stages add their subcommands here: each module has `register(command)`, where
# `command(name, func, help_text)` returns an argparse subparser. Importing them must stay cheap (no torch).
STAGE_COMMANDS = (
    "xmrc.backends.commands",
    "xmrc.errors.commands",
    "xmrc.finetune.commands",
    "xmrc.analysis.oracle_commands",
    "xmrc.analysis.layer_commands",
    "xmrc.paper.commands",
    "xmrc.intervals",
)


def format_criterion(parser: argparse.ArgumentParser) -> None:
    """--format-criterion: how each model's prompt format is chosen (config key tables.format_criterion)."""
    from xmrc.tables import DEFAULT_FORMAT_CRITERION, FORMAT_CRITERIA

    parser.add_argument("--format-criterion", choices=list(FORMAT_CRITERIA), default=DEFAULT_FORMAT_CRITERION,
                        help="how each model's prompt format is chosen: " + "; ".join(
                            f"{name} = {text}" for name, text in FORMAT_CRITERIA.items()))


def not_in_summary(parser: argparse.ArgumentParser) -> None:
    """--not-in-summary: rows of the per-language tables only (config key extra_models)."""
    parser.add_argument("--not-in-summary", nargs="+", default=[], metavar="MODEL",
                        help="paper names of models left out of the summary table (rows of the others only)")


def _register_stage(module_name: str, command) -> None:
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        if error.name is not None and module_name.startswith(error.name):
            return  # stage not installed in this checkout
        raise
    module.register(command)


def build_parser() -> argparse.ArgumentParser:
    from xmrc import dataset_registry

    parser = argparse.ArgumentParser(prog="xmrc", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"xmrc {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name, func, help_text):
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(func=func)
        return p

    def languages(p):
        p.add_argument("--languages", nargs="+", default=list(LANGUAGES), choices=LANGUAGES, metavar="LANG")

    def model(p):
        p.add_argument("--registry", required=True, help="model registry YAML")
        p.add_argument("--model", required=True, help="registry key or paper name")
        p.add_argument("--weights", help="weights directory or hub id (default: from the registry)")

    p = command("check-config", cmd_check_config, "validate a run config and its registry")
    p.add_argument("config")

    p = command("data", cmd_data, "obtain a dataset (XQuAD, MLQA), validate it, write one Parquet table")
    p.add_argument("--dataset", default="xquad", help="key in the dataset registry (default: xquad)")
    p.add_argument("--datasets", default=str(dataset_registry.DEFAULT_REGISTRY),
                   help="dataset registry YAML (default: config/datasets.yaml of this checkout)")
    p.add_argument("--source", choices=["hub", "local"], required=True)
    p.add_argument("--hub-id", help="hub dataset id (default: the registry's)")
    p.add_argument("--revision")
    p.add_argument("--local-dir", help="directory of the dataset's own JSON files (XQuAD: xquad.<lang>.json; "
                                       "MLQA: the MLQA_V1 folder, test/test-context-<lang>-question-<lang>.json, dev/dev-...)")
    languages(p)
    p.add_argument("--out", required=True)
    p.add_argument("--problems", required=True, help="CSV report of data problems, by id")
    p.add_argument("--split", help="split to load (default: the registry's evaluation split; the demonstration "
                                   "split, e.g. MLQA's validation, for k-shot demonstrations)")

    p = command("tiny-model", cmd_tiny_model, "build a tiny random model of a real architecture")
    p.add_argument("--registry", required=True)
    p.add_argument("--model", required=True)
    p.add_argument("--data", required=True, help="XQuAD table: the tokenizer is trained on it")
    p.add_argument("--out", required=True)

    def setting(p):
        p.add_argument("--shots", type=shots_count, required=True, metavar="K", help="k-shot (any k >= 0)")
        p.add_argument("--format", choices=list(FORMATS), required=True)

    p = command("prompts", cmd_prompts, "build the prompts of one (model, shots, format) for all directions")
    p.add_argument("--data", required=True)
    model(p)
    setting(p)
    languages(p)
    p.add_argument("--demonstrations", nargs="*", default=[], metavar="ID",
                   help="demonstration ids: k-shot uses the first k (at least k needed)")
    p.add_argument("--scenarios", nargs="+", choices=list(SCENARIOS), default=list(PAPER_SCENARIOS),
                   help="which directions get prompts: en-x, x-x (the paper's), x-y (every language pair)")
    p.add_argument("--alignment", choices=["parallel", "by_direction"], default="parallel",
                   help="how items align across languages (dataset registry key alignment)")
    p.add_argument("--demonstration-data", help="table of the demonstration split (default: --data)")
    p.add_argument("--max-items", type=int)
    p.add_argument("--ids", help="evaluate only these ids (text file, one per line), e.g. held-out articles")
    p.add_argument("--out", required=True)

    p = command("score", cmd_score, "F1/EM of every generation against its gold answer")
    p.add_argument("--generations", required=True)
    p.add_argument("--normalization", choices=["mlqa", "squad"], default="mlqa")
    p.add_argument("--out", required=True)

    p = command("aggregate", cmd_aggregate, "per-direction scores from per-item scores")
    p.add_argument("--scores", nargs="+", required=True)
    p.add_argument("--out-csv", required=True)
    p.add_argument("--out-items", required=True)

    p = command("tables", cmd_tables, "summary and per-language tables (CSV and Markdown)")
    p.add_argument("--direction-scores", required=True)
    format_criterion(p)
    not_in_summary(p)
    p.add_argument("--out-dir", required=True)

    for module_name in STAGE_COMMANDS:
        _register_stage(module_name, command)

    p = command("figures", cmd_figures,
                "one figure (PNG): F1 heatmap, en-x vs x-x means, or one model's context x question F1 matrix")
    p.add_argument("--direction-scores", required=True)
    p.add_argument("--kind", choices=["heatmap", "means", "matrix"], required=True)
    p.add_argument("--shots", type=shots_count, required=True)
    p.add_argument("--scenario", choices=["en-x", "x-x", "x-y"], default="en-x", help="heatmap: its directions")
    p.add_argument("--model", help="matrix: the model (its name in the direction scores)")
    p.add_argument("--format", choices=list(FORMATS), help="matrix: the prompt format")
    format_criterion(p)
    p.add_argument("--out", required=True)

    p = command("report-tables", cmd_report_tables, "a run's main tables as HTML pages (items of the HTML report)")
    p.add_argument("--tables-dir", required=True, help="results/<run>/tables")
    p.add_argument("--stems", nargs="+", required=True, help="tables (paths under --tables-dir, without .csv)")
    p.add_argument("--out-dir", required=True, help="results/<run>/report: <stem>.html per table")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except XmrcError as error:
        print(f"xmrc: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("xmrc: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
