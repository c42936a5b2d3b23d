"""Bootstrap intervals: against the normal approximation, paired differences of known size, seeding,
the compared pairs from the registry, and the `intervals` commands end to end."""

import numpy as np
import pandas as pd
import pytest

from helpers.scores import item_frame
from xmrc import cli
from xmrc.bootstrap import BootstrapSettings, mean_intervals, resampled_counts, resampled_means
from xmrc.config import Registry
from xmrc.exceptions import XmrcError
from xmrc.intervals import ModelPair, direction_intervals, model_pairs, paired_differences

Z95 = 1.959964


def normal_interval(vector):
    half = Z95 * vector.std(ddof=1) / np.sqrt(len(vector))
    return vector.mean() - half, vector.mean() + half


def test_interval_of_a_large_sample_matches_the_normal_approximation():
    # F1-like scores: many 0s and 1s, some partial; n large, so the bootstrap distribution of the mean is normal
    rng = np.random.default_rng(7)
    n = 10_000
    scores = np.where(rng.random(n) < 0.3, rng.random(n), rng.random(n) < 0.6)
    settings = BootstrapSettings(resamples=4000, seed=1)
    mean, low, high = mean_intervals([scores], settings)[0]
    ref_low, ref_high = normal_interval(scores)
    half = (ref_high - ref_low) / 2
    assert mean == pytest.approx(scores.mean())
    # the 2.5% and 97.5% quantiles of 4000 resamples carry a Monte Carlo error of ~2% of the half-width
    assert low == pytest.approx(ref_low, abs=0.1 * half) and high == pytest.approx(ref_high, abs=0.1 * half)
    # and the resampled means are normal beyond the 95% quantiles: a 68% interval is mean +- 1 standard error
    means = resampled_means(scores[None, :], settings)[0]
    assert np.quantile(means, [0.025, 0.975]) == pytest.approx([low, high], abs=1e-12)
    assert np.quantile(means, [0.15865, 0.84135]) == pytest.approx(
        [mean - half / Z95, mean + half / Z95], abs=0.1 * half / Z95
    )


def test_a_small_sample_interval_matches_the_exact_bootstrap_distribution():
    # two items 0 and 1: the resampled mean is k/2 with k ~ Binomial(2, 1/2): P(0)=1/4, P(1/2)=1/2, P(1)=1/4
    counts = np.vstack(list(resampled_counts(2, 40_000, seed=3)))
    share = np.bincount(counts[:, 1].astype(int), minlength=3) / len(counts)
    assert share == pytest.approx([0.25, 0.5, 0.25], abs=0.01)
    assert (counts.sum(axis=1) == 2).all()
    assert list(mean_intervals([np.array([0.0, 1.0])], BootstrapSettings(4000, 0.9, 0))[0]) == [0.5, 0.0, 1.0]


def test_intervals_are_seeded_and_independent_of_chunking_and_item_order():
    rng = np.random.default_rng(0)
    vectors = [rng.random(300), rng.random(300), rng.random(77)]
    settings = BootstrapSettings(resamples=500, seed=11)
    first = mean_intervals(vectors, settings)
    assert np.array_equal(first, mean_intervals(vectors, settings))
    assert not np.array_equal(first, mean_intervals(vectors, BootstrapSettings(500, seed=12)))
    # tiny chunks (one resample per chunk) draw the same items: equal up to float rounding of the products
    assert np.allclose(first, mean_intervals(vectors, settings, chunk_elements=1), rtol=0, atol=1e-12)
    # one vector's interval does not depend on the other vectors of the call
    assert np.array_equal(first[2], mean_intervals([vectors[2]], settings)[0])


def test_direction_intervals_do_not_depend_on_row_order():
    rng = np.random.default_rng(1)
    ids = [f"q{i:04d}" for i in range(400)]
    items = pd.concat(
        [
            item_frame("M", 0, "v1", [("de", "zh"), ("en", "en")], ids, rng.random(400)),
            item_frame("M", 5, "v2", [("de", "zh")], ids, rng.random(400)),
        ],
        ignore_index=True,
    )
    settings = BootstrapSettings(300, seed=2)
    table = direction_intervals(items, settings)
    shuffled = direction_intervals(items.sample(frac=1, random_state=3), settings)
    pd.testing.assert_frame_equal(table, shuffled)
    assert list(table["n"]) == [400, 400, 400]
    assert ((table["f1_lo"] <= table["f1"]) & (table["f1"] <= table["f1_hi"])).all()
    assert set(zip(table["shots"], table["context_lang"], table["question_lang"])) == {
        (0, "de", "zh"),
        (0, "en", "en"),
        (5, "de", "zh"),
    }


def test_paired_difference_of_a_known_size():
    # instruct = base + 0.03 on average, per-item noise sd 0.2; base itself varies a lot between items, which
    # an unpaired comparison would pay for and the paired one must not
    rng = np.random.default_rng(5)
    n = 10_000
    ids = [f"i{i}" for i in range(n)]
    base = rng.random(n)
    diff = 0.03 + 0.2 * rng.standard_normal(n)
    items = pd.concat(
        [
            item_frame("Base", 2, "v1", [("en", "de")], ids, base),
            item_frame("Chat", 2, "v1", [("en", "de")], ids, base + diff),
            item_frame("Same", 2, "v1", [("en", "de")], ids, base),
        ],
        ignore_index=True,
    )
    pairs = [
        ModelPair("instruct vs base", "Base", "Chat"),
        ModelPair("instruct vs base", "Base", "Same"),
        ModelPair("instruct vs base", "Base", "Not-In-The-Run"),
    ]
    table = paired_differences(items, pairs, BootstrapSettings(2000, seed=4)).set_index("model_b")
    assert list(table.index) == ["Chat", "Same"]
    row = table.loc["Chat"]
    assert row["n"] == n and row["f1_diff"] == pytest.approx(100 * diff.mean())
    low, high = (100 * v for v in normal_interval(diff))
    half = (high - low) / 2
    assert row["f1_diff_lo"] == pytest.approx(low, abs=0.1 * half)
    assert row["f1_diff_hi"] == pytest.approx(high, abs=0.1 * half)
    assert row["f1_diff_lo"] > 0 and bool(row["f1_excludes_0"])
    # the unpaired interval would be ~2.3 times wider (sd of base+diff and base ~0.29 each)
    assert high - low < 0.6 * 2 * Z95 * 100 * np.sqrt(base.var() + (base + diff).var()) / np.sqrt(n)
    same = table.loc["Same"]
    assert (same["f1_diff"], same["f1_diff_lo"], same["f1_diff_hi"]) == (0, 0, 0)
    assert not same["f1_excludes_0"]


def test_paired_differences_use_the_items_both_sides_have_and_every_shots_setting():
    # 0-shot scores two more items (the demonstrations); 5-shot vs 0-shot pairs the shared ones only
    ids = ["a", "b", "c", "d"]
    items = pd.concat(
        [
            item_frame("M", 0, "v1", [("de", "zh"), ("de", "de")], ids, [1, 1, 0, 0]),
            item_frame("M", 5, "v1", [("de", "zh")], ["a", "b"], [0, 1]),
            item_frame("M", 2, "v1", [("de", "zh")], ["c", "d"], [1, 1]),
        ],
        ignore_index=True,
    )
    table = paired_differences(items, [], BootstrapSettings(200, seed=0))
    assert list(table["comparison"]) == ["2-shot vs 0-shot", "5-shot vs 0-shot"]
    assert list(table["n"]) == [2, 2]
    assert list(table["f1_diff"]) == [100.0, -50.0]
    assert list(table["f1_a"]) == [0.0, 100.0]


def test_compared_model_pairs_come_from_the_registry():
    registry = Registry.load("config/models.yaml")
    keys = [
        "llama-3.1-8b",
        "llama-3.1-instruct-8b",
        "llama-3.1-tuned-8b",
        "llama-3.1-70b",
        "llama-3.1-instruct-70b",
        "qwen-2.5-instruct-7b",
        "tiny-llama-base",
        "tiny-llama-chat",
        "tiny-qwen2-chat",
        "tiny-llama-qt-lora",
    ]
    pairs = {(p.comparison, p.base, p.other) for p in model_pairs(registry.get(k) for k in keys)}
    assert pairs == {
        ("instruct vs base", "LLaMA-3.1-8B", "LLaMA-3.1-Instruct-8B"),
        ("tuned vs base", "LLaMA-3.1-8B", "LLaMA-3.1-Tuned-8B"),
        ("instruct vs base", "LLaMA-3.1-70B", "LLaMA-3.1-Instruct-70B"),
        ("instruct vs base", "Tiny-Llama-Base", "Tiny-Llama-Chat"),  # not Tiny-Qwen2-Chat: another architecture
        ("tuned vs base", "Tiny-Llama-Chat", "Tiny-Llama-QT-LoRA"),
    }  # Qwen-2.5-Instruct-7B: its base is not in the run


def test_bad_settings_are_one_line_errors():
    with pytest.raises(XmrcError, match=r"intervals.confidence"):
        BootstrapSettings(confidence=95)
    with pytest.raises(XmrcError, match=r"intervals.resamples"):
        BootstrapSettings(resamples=0)


def test_intervals_commands_write_tables_and_figure(tmp_path, capsys):
    rng = np.random.default_rng(2)
    ids = [f"q{i}" for i in range(50)]
    directions = [("en", "en"), ("de", "zh"), ("zh", "de")]
    frames = [
        item_frame(name, shots, fmt, directions, ids, rng.random(50), rng.random(50) < 0.5)
        for name in ("Tiny-Llama-Base", "Tiny-Llama-Chat")
        for shots in (0, 3)
        for fmt in ("v1", "v2")
    ]
    path = tmp_path / "item_scores.parquet"
    pd.concat(frames, ignore_index=True).to_parquet(path)
    out = tmp_path / "intervals"
    args = [
        "intervals",
        "--item-scores",
        str(path),
        "--registry",
        "config/models.yaml",
        "--models",
        "tiny-llama-base",
        "tiny-llama-chat",
        "--resamples",
        "200",
        "--out-dir",
        str(out),
    ]
    assert cli.main(args) == 0
    intervals = pd.read_csv(out / "direction_intervals.csv")
    assert len(intervals) == 2 * 2 * 2 * 3 and intervals["chosen"].sum() == 2 * 2 * 3
    differences = pd.read_csv(out / "paired_differences.csv")
    # instruct vs base at 0 and 3 shots, and 3-shot vs 0-shot for each model; three directions each
    assert differences.groupby("comparison").size().to_dict() == {"instruct vs base": 6, "3-shot vs 0-shot": 6}
    assert "[" in (out / "paired_differences.md").read_text() and "[" in (out / "direction_intervals.md").read_text()
    again = tmp_path / "again"
    assert cli.main(args[:-1] + [str(again), "--no-markdown"]) == 0
    assert sorted(p.name for p in again.iterdir()) == [
        "direction_intervals.csv",
        "paired_differences.csv",
        "scenario_intervals.csv",
    ]
    assert (again / "direction_intervals.csv").read_bytes() == (out / "direction_intervals.csv").read_bytes()
    figure = tmp_path / "intervals_f1_3shot.png"
    assert (
        cli.main(
            [
                "intervals-figure",
                "--intervals",
                str(out / "direction_intervals.csv"),
                "--shots",
                "3",
                "--out",
                str(figure),
            ]
        )
        == 0
    )
    assert figure.read_bytes()[:4] == b"\x89PNG"
    assert (
        cli.main(
            [
                "intervals-figure",
                "--intervals",
                str(out / "direction_intervals.csv"),
                "--shots",
                "1",
                "--out",
                str(figure),
            ]
        )
        == 2
    )
    assert "no rows for shots=1" in capsys.readouterr().err
