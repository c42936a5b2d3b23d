"""Commands of the protocol-sensitivity study (config/protocol.yaml): `xmrc protocol-arms`, `protocol-sensitivity`."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from xmrc.bootstrap import BootstrapSettings
from xmrc.config import validate_config
from xmrc.exceptions import XmrcError
from xmrc.io import read_yaml, write_text
from xmrc.sensitivity import (
    BASELINE,
    arm_names,
    arm_run,
    largest_effects,
    markdown_table,
    merged,
    override_args,
    params_changed_outputs,
    seed_from_baseline,
    sensitivity_table,
)
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


def cmd_protocol_derive_arm(args) -> None:
    """start a derived arm from a copy of the baseline's outputs, those its switch touches dated back (the jobs a
    dry run of the baseline with the switch flipped re-runs because their params changed)"""
    config = study_config(args.config)
    study = config["protocol_study"]
    if args.arm not in arm_names(config):
        raise XmrcError(f"protocol_study.arms: no arm {args.arm!r} (expected one of {', '.join(arm_names(config))})")
    if args.arm not in study["derived"]:
        print(f"{args.arm}: not a derived arm (protocol_study.derived), its run starts from nothing")
        return
    base_dir, arm_dir = Path(args.results) / arm_run(config, BASELINE), Path(args.results) / arm_run(config, args.arm)
    if arm_dir.is_dir():
        print(f"{arm_dir}: already there (the arm's own run resumes it)")
        return
    if not (base_dir / "tables/item_scores.parquet").is_file():
        raise XmrcError(f"{base_dir}: the baseline run has not finished (run it first)")
    baseline = json.dumps({"arm": BASELINE})
    # the dry run of the baseline with the switch flipped: the jobs whose params the switch changes
    command = ["snakemake", "-n", *[x for c in args.config for x in ("--configfile", c)]]
    command += ["--config", f"protocol_study={baseline}", *override_args(study["arms"][args.arm]), *args.config_values]
    listed = subprocess.run(command, capture_output=True, text=True)
    if listed.returncode != 0:
        raise XmrcError(f"snakemake -n failed: {listed.stderr.strip().splitlines()[-1:]}")
    stale = sorted(path for path in params_changed_outputs(listed.stdout) if path.startswith(f"{base_dir}/"))
    if not stale:  # an exact copy would be "nothing to be done": the arm would silently equal the baseline
        raise XmrcError(f"{args.arm}: Snakemake lists no output of {base_dir} whose params the switch changes")
    backdated = seed_from_baseline(base_dir, arm_dir, stale)
    print(f"{arm_dir}: the baseline's outputs, {backdated} touched by the switch to recompute: " + ", ".join(stale))


def register(command) -> None:
    p = command("protocol-arms", cmd_protocol_arms)
    p.add_argument("config", nargs="+", help="the study's config files (config/config.yaml config/protocol.yaml)")

    p = command("protocol-derive-arm", cmd_protocol_derive_arm)
    p.add_argument("--config", nargs="+", required=True, help="the study's config files, merged in order")
    p.add_argument("--arm", required=True)
    p.add_argument("--results", default="results")
    p.add_argument("--config-values", nargs="*", default=[], help="more Snakemake --config values (e.g. backends=...)")

    p = command("protocol-sensitivity", cmd_protocol_sensitivity)
    p.add_argument("--config", nargs="+", required=True, help="the study's config files, merged in order")
    p.add_argument("--results", default="results", help="where the runs are (results/<run>-<arm>/)")
    p.add_argument("--resamples", type=int, default=1000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, help="protocol_sensitivity.csv (the .md is written beside it)")
    p.add_argument("--figure", required=True, help="forest plot (PNG)")
