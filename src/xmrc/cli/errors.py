"""Commands of the error stage: wrong-answers -> detect-language, judge -> error-tables -> error-figure."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from xmrc import LANGUAGES
from xmrc.cli import args as shared
from xmrc.errors import KEYS, wrong
from xmrc.errors.judge import open_scorer, run_judge
from xmrc.errors.language import LINGUA_LANGUAGES, build_detector, language_errors
from xmrc.errors.rates import error_rates, item_types, write_error_tables
from xmrc.exceptions import XmrcError
from xmrc.hub.models import local_model_and_weights
from xmrc.io import read_table, write_csv, write_parquet
from xmrc.jobs import job_settings
from xmrc.prompts import hf_chat_template


def cmd_wrong_answers(args) -> None:
    """select the wrong answers W of one shots setting and scenario"""
    if len(args.generations) != len(args.scores):
        raise XmrcError(f"{len(args.generations)} generation file(s) but {len(args.scores)} score file(s)")
    generations = pd.concat(
        [read_table(p, required=KEYS + ["answer_lang", "gold", "raw_output", "prediction"]) for p in args.generations],
        ignore_index=True,
    )
    scores = pd.concat([read_table(p, required=KEYS + ["em", "f1"]) for p in args.scores], ignore_index=True)
    questions = read_table(args.data, required=["id", "lang", "question"])
    if args.prompt_format == "best":
        if not args.direction_scores:
            raise XmrcError("--direction-scores is required with --prompt-format best")
        direction_scores = read_table(
            args.direction_scores, required=["model", "shots", "prompt_format", "context_lang", "question_lang", "f1"]
        )
        formats = wrong.chosen_formats(direction_scores, args.shots, args.format_criterion, args.format_choice)
    else:
        formats = args.prompt_format
    scored = wrong.scored_generations(generations, scores, questions)
    answers, counts = wrong.select(scored, args.shots, args.scenario, formats, args.metric, args.max_score)
    write_parquet(answers, args.out)
    write_csv(counts, args.out_counts)
    print(
        f"{args.out}: {len(answers)} wrong answers ({args.metric} <= {args.max_score}) of "
        f"{int(counts['n_items'].sum())} items, {counts['model'].nunique()} model(s), {len(counts)} directions"
    )


def cmd_detect_language(args) -> None:
    """Lingua language of reference and prediction of W"""
    answers = read_table(args.wrong_answers, required=KEYS + ["gold", "prediction"])
    languages = "all" if args.lingua_languages == "all" else LANGUAGES
    result = language_errors(answers, build_detector(languages, threads=args.threads))
    write_parquet(result, args.out)
    print(
        f"{args.out}: {int(result['language_error'].sum())} language errors, "
        f"{int((result['prediction_lang'] == 'und').sum())} undecidable predictions in {len(result)} wrong answers"
    )


def cmd_judge(args) -> None:
    """LLM judge of generation failures over W (resumable)"""
    model, weights = local_model_and_weights(args.registry, args.model, args.weights, "the judge", role="judge model")
    answers = read_table(args.wrong_answers, required=KEYS + ["question", "raw_output"])
    scorer = open_scorer(args.backend, weights, model.revision, args.dtype, args.batch_size, model.gpus)
    chat_template = hf_chat_template(scorer.tokenizer) if model.chat_template else None
    result = run_judge(
        answers,
        scorer,
        Path(args.out),
        judge_name=model.name,
        chat_template=chat_template,
        chunk_size=args.chunk_size,
        settings=job_settings(args),
        layout=args.layout,
    )
    counts = result["category"].value_counts().to_dict()
    print(f"{args.out}: {len(result)} wrong answers judged by {model.name}: {counts}")


def cmd_error_tables(args) -> None:
    """error rates per direction; Tables 7, 8, 9a-c, 2 (right half)"""
    counts = read_table(args.counts, required=wrong.COUNT_COLUMNS)
    answers = read_table(args.wrong_answers, required=KEYS + ["rule_blank"])
    language = read_table(args.language, required=KEYS + ["prediction_lang", "intruding_lang", "language_error"])
    judge = read_table(args.judge, required=KEYS + ["verdict"])
    rates = error_rates(counts, answers, language, judge, args.scenario)
    paths = write_error_tables(
        rates, args.shots, args.scenario, Path(args.out_dir), args.not_in_summary, shared.paper_row_filter(args)
    )
    items = item_types(answers[wrong.in_scenario(answers, args.scenario)], language, judge)
    write_parquet(items, args.out_items)
    print(f"{args.out_dir}: {len(paths)} error tables for {args.shots}-shot {args.scenario}; {args.out_items}")


def cmd_error_figure(args) -> None:
    """stacked bars of error types per model (PNG)"""
    from xmrc.errors.figure import error_types_chart  # matplotlib and seaborn

    items = read_table(args.items, required=KEYS + ["verdict", "language_error"])
    error_types_chart(items, f"Error types of wrong answers, {args.shots}-shot {args.scenario}", Path(args.out))
    print(f"{args.out}: error types of {len(items)} wrong answers")


def register(command) -> None:
    p = command("wrong-answers", cmd_wrong_answers)
    p.add_argument("--data", required=True, help="XQuAD table (questions)")
    p.add_argument("--generations", nargs="+", required=True)
    p.add_argument("--scores", nargs="+", required=True, help="score files, in the order of --generations")
    p.add_argument("--direction-scores", help="direction_scores.csv (for --prompt-format best)")
    shared.scenario_setting(p)
    p.add_argument(
        "--prompt-format",
        choices=["best", "v1", "v2"],
        default="best",
        help="best: each model's format chosen by --format-criterion, as in the tables",
    )
    shared.format_criterion(p)
    p.add_argument("--metric", choices=["em", "f1"], default="em")
    p.add_argument("--max-score", type=float, default=0.0, help="an item is wrong when metric <= this (0-1)")
    p.add_argument("--out", required=True, help="wrong_answers.parquet")
    p.add_argument("--out-counts", required=True, help="wrong_counts.csv: items and wrong answers per direction")

    p = command("detect-language", cmd_detect_language)
    p.add_argument("--wrong-answers", required=True)
    p.add_argument("--threads", type=int, help="Lingua worker threads (default: all cores)")
    p.add_argument("--lingua-languages", choices=LINGUA_LANGUAGES, default="xquad", help="protocol.lingua_languages")
    p.add_argument("--out", required=True)

    p = command("judge", cmd_judge)
    p.add_argument("--wrong-answers", required=True)
    shared.model(p)
    p.add_argument("--backend", choices=["hf", "vllm"], default="hf")
    p.add_argument("--batch-size", type=int, default=8)
    shared.dtype(p)
    p.add_argument("--chunk-size", type=int, default=512, help="answers per checkpoint shard")
    p.add_argument("--layout", choices=["paper", "compact"], default="paper", help="protocol.layout")
    p.add_argument("--out", required=True)

    p = command("error-tables", cmd_error_tables)
    p.add_argument("--counts", required=True, help="wrong_counts.csv")
    p.add_argument("--wrong-answers", required=True)
    p.add_argument("--language", required=True)
    p.add_argument("--judge", required=True)
    shared.scenario_setting(p)
    shared.not_in_summary(p)
    shared.paper_rows(p)
    p.add_argument("--out-dir", required=True)
    p.add_argument("--out-items", required=True, help="typed wrong answers (Parquet), input of error-figure")

    p = command("error-figure", cmd_error_figure)
    p.add_argument("--items", required=True, help="typed wrong answers from error-tables")
    shared.scenario_setting(p)
    p.add_argument("--out", required=True)
