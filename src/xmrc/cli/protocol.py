"""Commands of the protocol-sensitivity study (config/protocol.yaml): `xmrc protocol-arms`, `protocol-sensitivity`."""

from __future__ import annotations

from pathlib import Path

from xmrc.bootstrap import BootstrapSettings
from xmrc.config import validate_config
from xmrc.io import read_yaml, write_text
from xmrc.sensitivity import arm_names, largest_effects, markdown_table, merged, sensitivity_table
from xmrc.tables import write_table

F1_METRICS = ("F1 en-en", "F1 mean en-x", "F1 mean x-x")


def study_config(paths: list[str]) -> dict:
    """The config files merged in order, as Snakemake merges --configfile (a later file wins key by key)."""
    config: dict = {}
    for path in paths:
        config = merged(config, read_yaml(path) or {})
    return validate_config(config, " + ".join(paths))


def cmd_protocol_arms(args) -> None:
    """the runs of a protocol-sensitivity study, one per line: baseline, then each arm"""
    print("\n".join(arm_names(study_config(args.config))))


def cmd_protocol_sensitivity(args) -> None:
    """every arm of a protocol-sensitivity study against its baseline on the same items: paired differences
    with bootstrap intervals (CSV, Markdown) and a forest plot"""
    from xmrc.sensitivity_plot import forest_plot  # matplotlib

    config = study_config(args.config)
    settings = BootstrapSettings(resamples=args.resamples, seed=args.seed)
    table = sensitivity_table(Path(args.results), config, settings)
    write_table(table, Path(args.out).with_suffix(""), float_format="%.3f")
    write_text(markdown_table(table).to_markdown(index=False) + "\n", Path(args.out).with_suffix(".md"))
    forest_plot(table, args.figure)
    top = largest_effects(table, F1_METRICS)
    moved = ", ".join(f"{r.switch} ({r.model}, {r.metric} {r.difference:+.2f})" for r in top.itertuples())
    print(
        f"{args.out}: {len(table)} paired differences, {table['switch'].nunique()} switches; F1 moved most by {moved}"
    )


def register(command) -> None:
    p = command("protocol-arms", cmd_protocol_arms)
    p.add_argument("config", nargs="+", help="the study's config files (config/config.yaml config/protocol.yaml)")

    p = command("protocol-sensitivity", cmd_protocol_sensitivity)
    p.add_argument("--config", nargs="+", required=True, help="the study's config files, merged in order")
    p.add_argument("--results", default="results", help="where the runs are (results/<run>-<arm>/)")
    p.add_argument("--resamples", type=int, default=1000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, help="protocol_sensitivity.csv (the .md is written beside it)")
    p.add_argument("--figure", required=True, help="forest plot (PNG)")
