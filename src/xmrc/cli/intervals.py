"""Commands of the confidence intervals (config key `intervals`): the interval tables and their figure."""

from __future__ import annotations

import argparse

from xmrc.bootstrap import BootstrapSettings
from xmrc.cli import args as shared
from xmrc.config import Registry
from xmrc.intervals import model_pairs, read_intervals, write_intervals
from xmrc.io import read_table


def cmd_intervals(args) -> None:
    """bootstrap intervals of F1/EM per direction and paired differences of compared models/settings"""
    registry = Registry.load(args.registry)
    pairs = model_pairs(registry.get(key) for key in args.models)
    settings = BootstrapSettings(args.resamples, args.confidence, args.seed)
    paths = write_intervals(
        read_table(args.item_scores),
        pairs,
        settings,
        args.out_dir,
        args.format_criterion,
        args.markdown,
        args.format_choice,
    )
    print(
        f"{args.out_dir}: {len(paths)} interval tables ({settings.resamples} resamples, "
        f"{settings.confidence:.0%} intervals, seed {settings.seed})"
    )


def cmd_intervals_figure(args) -> None:
    """F1 per direction with bootstrap error bars (PNG)"""
    from xmrc.figures import interval_chart  # matplotlib and seaborn

    path = interval_chart(read_intervals(args.intervals), args.shots, args.out)
    print(f"{path}: F1 with bootstrap intervals, {args.shots}-shot")


def register(command) -> None:
    p = command("intervals", cmd_intervals)
    p.add_argument("--item-scores", required=True, help="results/<run>/tables/item_scores.parquet")
    p.add_argument("--registry", required=True, help="model registry YAML (which models a table compares)")
    p.add_argument("--models", nargs="+", required=True, metavar="MODEL", help="the run's models (keys or names)")
    p.add_argument("--resamples", type=int, default=1000)
    p.add_argument("--confidence", type=float, default=0.95)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--markdown", action=argparse.BooleanOptionalAction, default=True)
    shared.format_criterion(p)
    p.add_argument("--out-dir", required=True)

    p = command("intervals-figure", cmd_intervals_figure)
    p.add_argument("--intervals", required=True, help="direction_intervals.csv")
    p.add_argument("--shots", type=int, required=True)
    p.add_argument("--out", required=True)
