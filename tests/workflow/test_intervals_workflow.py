"""The interval rules through Snakemake: off in the paper config, on a small item-scores table when enabled."""

import numpy as np
import pandas as pd

from helpers.scores import item_frame
from helpers.workflow import copy_workflow, snakemake


def test_workflow_runs_the_interval_rules_only_when_enabled(tmp_path):
    checkout = copy_workflow(tmp_path / "checkout")
    (checkout / "on.yaml").write_text("intervals: {enabled: true, resamples: 50, markdown: false}\n")
    off = snakemake("-n", cwd=checkout)  # the paper config: the option is off, no interval job or file
    assert off.returncode == 0, off.stderr
    assert "rule generate" in off.stdout and "intervals" not in off.stdout
    # the rules' own shell commands on a small item-scores table (upstream rules not run)
    on = [
        "--configfile",
        "config/smoke.yaml",
        "on.yaml",
        "--allowed-rules",
        "intervals",
        "intervals_figure",
        "--cores",
        "1",
        "results/smoke/figures/intervals_f1_2shot.png",
    ]
    names = ["Tiny-Llama-Base", "Tiny-Llama-Chat", "Tiny-Llama-TULU-SFT"]
    rng = np.random.default_rng(0)
    frames = [
        item_frame(name, shots, fmt, [("en", "en"), ("en", "de")], ["a", "b", "c"], rng.random(3))
        for name in names
        for shots in (0, 2)
        for fmt in ("v1", "v2")
    ]
    tables_dir = checkout / "results/smoke/tables"
    tables_dir.mkdir(parents=True)
    pd.concat(frames, ignore_index=True).to_parquet(tables_dir / "item_scores.parquet")
    result = snakemake(*on, cwd=checkout)
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in (tables_dir / "intervals").iterdir()) == [
        "direction_intervals.csv",
        "paired_differences.csv",
        "scenario_intervals.csv",
    ]
    differences = pd.read_csv(tables_dir / "intervals/paired_differences.csv")
    assert set(differences["comparison"]) == {"instruct vs base", "tuned vs base", "2-shot vs 0-shot"}
    assert (checkout / "results/smoke/figures/intervals_f1_2shot.png").stat().st_size > 0
