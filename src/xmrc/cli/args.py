"""Arguments several commands share, declared once: model and registry, dtype, shots and format, languages,
the tables' format criterion and summary rows."""

from __future__ import annotations

import argparse

from xmrc import LANGUAGES
from xmrc.exceptions import XmrcError
from xmrc.extract import EXTRACTIONS
from xmrc.prompts import ANSWER_CUES, ANSWER_LANGUAGES, FORMATS, LAYOUTS, Layout
from xmrc.tables import DEFAULT_FORMAT_CHOICE, DEFAULT_FORMAT_CRITERION, FORMAT_CHOICES, FORMAT_CRITERIA

DTYPES = ["auto", "bfloat16", "float16", "float32"]


def shots_count(text: str) -> int:
    """--shots: any k >= 0 (whether k demonstrations are configured is checked where they are read)."""
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of shots (an integer >= 0)")
    return int(text)


def model(parser: argparse.ArgumentParser, weights: bool = True) -> None:
    """--registry, --model and (unless the command loads none) --weights."""
    parser.add_argument("--registry", required=True, help="model registry YAML")
    parser.add_argument("--model", required=True, help="registry key or paper name")
    if weights:
        parser.add_argument("--weights", help="weights directory or hub id (default: from the registry)")


def required_paths(parser: argparse.ArgumentParser, *options: str) -> None:
    """Required file options that need no help text, e.g. --out."""
    for option in options:
        parser.add_argument(option, required=True)


def dtype(parser: argparse.ArgumentParser, default: str = "bfloat16") -> None:
    parser.add_argument("--dtype", choices=DTYPES, default=default)


def shots(parser: argparse.ArgumentParser, **options) -> None:
    parser.add_argument(
        "--shots", type=shots_count, metavar="K", help="k-shot (any k >= 0)", **({"required": True} | options)
    )


def setting(parser: argparse.ArgumentParser, several_formats: bool = False) -> None:
    """--shots and --format (or --formats): one setting of the generation stage."""
    shots(parser)
    if several_formats:
        parser.add_argument("--formats", nargs="+", choices=list(FORMATS), required=True)
    else:
        parser.add_argument("--format", choices=list(FORMATS), required=True)


def scenario_setting(parser: argparse.ArgumentParser) -> None:
    """--shots and --scenario: one setting of the error stage."""
    shots(parser)
    parser.add_argument("--scenario", choices=["en-x", "x-x"], required=True)


def languages(parser: argparse.ArgumentParser, **options) -> None:
    parser.add_argument(
        "--languages", nargs="+", choices=LANGUAGES, metavar="LANG", **({"default": list(LANGUAGES)} | options)
    )


def format_criterion(parser: argparse.ArgumentParser) -> None:
    """--format-criterion and --format-choice: how each model's prompt format is chosen (config keys
    tables.format_criterion and tables.format_choice)."""
    parser.add_argument(
        "--format-criterion",
        choices=list(FORMAT_CRITERIA),
        default=DEFAULT_FORMAT_CRITERION,
        help="how each model's prompt format is chosen: "
        + "; ".join(f"{name} = {text}" for name, text in FORMAT_CRITERIA.items()),
    )
    parser.add_argument(
        "--format-choice",
        choices=list(FORMAT_CHOICES),
        default=DEFAULT_FORMAT_CHOICE,
        help="per_shots: a format per model and shots setting; per_model: one format per model, the criterion "
        "averaged over its shots settings",
    )


def paper_rows(parser: argparse.ArgumentParser) -> None:
    """--paper-rows and --registry: tables the paper publishes get exactly its rows, the others go to
    <table>_extra (config key tables.paper_rows)."""
    parser.add_argument(
        "--paper-rows",
        action="store_true",
        help="a table the paper publishes holds exactly the paper's rows (models matched by the registry's "
        "paper_name); the run's other rows go to <table>_extra",
    )
    parser.add_argument("--registry", help="model registry YAML (with --paper-rows: the models' paper names)")


def paper_row_filter(args: argparse.Namespace):
    """The row filter of --paper-rows (xmrc.paper.published.run_paper_rows), or None without it."""
    if not args.paper_rows:
        return None
    if not args.registry:
        raise XmrcError("--paper-rows needs --registry (the models' paper names)")
    from xmrc.config import Registry
    from xmrc.paper.published import run_paper_rows

    return run_paper_rows(Registry.load(args.registry).models.values())


def not_in_summary(parser: argparse.ArgumentParser) -> None:
    """--not-in-summary: rows of the per-language tables only (config key extra_models)."""
    parser.add_argument(
        "--not-in-summary",
        nargs="+",
        default=[],
        metavar="MODEL",
        help="paper names of models left out of the summary table (rows of the others only)",
    )


def prompt_protocol(parser: argparse.ArgumentParser) -> None:
    """The protocol switches that shape prompt text (config `protocol`; xmrc.prompts.Layout)."""
    parser.add_argument("--layout", choices=list(LAYOUTS), default="paper", help="protocol.layout")
    parser.add_argument("--answer-cue", choices=ANSWER_CUES, default="none", help="protocol.answer_cue (base models)")
    parser.add_argument("--answer-language", choices=ANSWER_LANGUAGES, default="named", help="protocol.answer_language")
    parser.add_argument("--system-prompt", default="", help="protocol.system_prompt ('' = none)")


def layout_of(args: argparse.Namespace) -> Layout:
    return Layout(args.layout, args.answer_cue, args.answer_language, args.system_prompt or None)


def extraction(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--extraction", choices=EXTRACTIONS, default="first_line", help="protocol.extraction")
