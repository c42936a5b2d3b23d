"""Intervals of Table 2's scenario means and ratios (xmrc.intervals.scenario_intervals) and the format choice of
the interval tables."""

import numpy as np
import pandas as pd
import pytest

from helpers.scores import item_frame
from xmrc import tables
from xmrc.bootstrap import BootstrapSettings
from xmrc.intervals import (
    SCENARIO_COLUMNS,
    chosen_formats,
    read_scenario_intervals,
    scenario_intervals,
    scenario_items,
    write_intervals,
)
from xmrc.paper.findings import scenario_table

SETTINGS = BootstrapSettings(resamples=400, seed=1)
EN_X = [("en", x) for x in ("de", "zh")]
X_X = [("de", "de"), ("zh", "zh")]


def items_of(model, shots, fmt, ids, en_en, en_x, x_x):
    """Item scores of one setting: each scenario's directions share the per-item F1 vector given."""
    return pd.concat(
        [item_frame(model, shots, fmt, [("en", "en")], ids, en_en)]
        + [item_frame(model, shots, fmt, [d], ids, en_x) for d in EN_X]
        + [item_frame(model, shots, fmt, [d], ids, x_x) for d in X_X],
        ignore_index=True,
    )


def test_scenario_intervals_are_table_2s_means_and_ratios_on_the_same_resampled_items():
    rng = np.random.default_rng(0)
    ids = [f"q{i:03d}" for i in range(300)]
    en_en = rng.random(300)
    en_x = np.clip(en_en * 0.5 + rng.normal(0, 0.05, 300), 0, 1)  # moves with en-en: a tight ratio
    x_x = rng.random(300)
    items = items_of("M", 2, "v1", ids, en_en, en_x, x_x)
    table = scenario_intervals(items, {("M", 2): "v1"}, SETTINGS)
    assert list(table.columns) == SCENARIO_COLUMNS and len(table) == 1
    row = table.iloc[0]
    assert row["n"] == 300
    summary = tables.summary_table(tables.direction_scores(items), 2)  # the point values are Table 2's
    for column in ("en-en", "mean en-x", "mean x-x", "en-x / en-en", "x-x / en-en"):
        assert row[column] == pytest.approx(summary.loc["M", column])
        assert row[f"{column}_lo"] < row[column] < row[f"{column}_hi"], column
    # the ratio's interval is the paired one: far narrower than the ratio of the means' bounds would be
    paired = row["en-x / en-en_hi"] - row["en-x / en-en_lo"]
    unpaired = row["mean en-x_hi"] / row["en-en_lo"] - row["mean en-x_lo"] / row["en-en_hi"]
    assert paired < unpaired / 3
    # the findings' table is this one as "mean [lo, hi]" cells
    cells = scenario_table(items, {("M", 2): "v1"}, SETTINGS).iloc[0]
    assert cells["mean en-x"] == f"{row['mean en-x']:.2f} [{row['mean en-x_lo']:.2f}, {row['mean en-x_hi']:.2f}]"


def test_scenario_items_keep_the_ids_of_every_scenario_direction_and_nan_a_missing_scenario():
    ids = [f"q{i}" for i in range(5)]
    items = items_of("M", 0, "v2", ids, np.ones(5), np.full(5, 0.5), np.zeros(5))
    items = items[~((items["context_lang"] == "zh") & (items["id"] == "q0"))]  # q0 lacks zh-zh
    per_item = scenario_items(items, "M", 0, "v2")
    assert list(per_item.index) == ids[1:] and np.allclose(per_item["en-x"], 50)
    english_only = scenario_items(items[items["context_lang"] == "en"], "M", 0, "v2")
    assert len(english_only) == 5 and english_only["x-x"].isna().all()
    table = scenario_intervals(items[items["context_lang"] == "en"], {("M", 0): "v2"}, SETTINGS)
    assert table.loc[0, "mean en-x"] == 50 and np.isnan(table.loc[0, "mean x-x_hi"])


def test_the_interval_tables_follow_the_format_choice(tmp_path):
    # v1 better at 0-shot by a little, v2 at 2-shot by a lot
    ids = [f"q{i}" for i in range(20)]
    frames = [
        items_of("M", shots, fmt, ids, np.full(20, value), np.full(20, value), np.full(20, value))
        for (shots, fmt), value in {(0, "v1"): 0.5, (0, "v2"): 0.4, (2, "v1"): 0.3, (2, "v2"): 0.9}.items()
    ]
    items = pd.concat(frames, ignore_index=True)
    scores = tables.direction_scores(items)
    assert chosen_formats(scores) == {("M", 0): "v1", ("M", 2): "v2"}
    assert chosen_formats(scores, choice="per_model") == {("M", 0): "v2", ("M", 2): "v2"}
    paths = write_intervals(items, [], SETTINGS, tmp_path, choice="per_model")
    assert {p.name for p in paths} >= {"scenario_intervals.csv", "scenario_intervals.md"}
    written = read_scenario_intervals(tmp_path / "scenario_intervals.csv")
    assert list(zip(written["shots"], written["prompt_format"])) == [(0, "v2"), (2, "v2")]
    assert list(written["mean en-x"]) == pytest.approx([40.0, 90.0])
    assert "| M | 0 | v2 | 20 | 40.00 [40.00, 40.00] |" in (tmp_path / "scenario_intervals.md").read_text()
