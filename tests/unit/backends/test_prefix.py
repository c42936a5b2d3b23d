"""Prefix order and shares, on hand-made token lists and on real prompts; the `prefix-stats` command."""

from __future__ import annotations

import subprocess
import sys

import pandas as pd
import pytest

from helpers import ROOT
from helpers.scale import prompt_table
from xmrc.backends.prefix import common_prefix_length, prefix_order, prefix_stats, shared_prefix_share


def test_prefix_order_puts_shared_prefixes_next_to_each_other():
    prompts = ["ctx A q1", "ctx B q1", "ctx A q2", "ctx B q2", "ctx A q3"]
    order = prefix_order(prompts)
    assert [prompts[i] for i in order] == ["ctx A q1", "ctx A q2", "ctx A q3", "ctx B q1", "ctx B q2"]
    assert shared_prefix_share([prompts[i] for i in order]) > shared_prefix_share(prompts)


def test_prefix_stats_without_and_with_a_tokenizer():
    prompts = ["abX", "zz", "abY"]
    assert prefix_stats(prompts) == {"n": 3, "chars_table_order": 0.0, "chars_prefix_order": 2 / 8}

    def characters(texts, add_special_tokens):
        return {"input_ids": [["<s>"] * add_special_tokens + list(text) for text in texts]}

    stats = prefix_stats(prompts, templated=True, tokenizer=characters)
    assert stats["tokens_prefix_order"] == 2 / 8 and stats["prompt_tokens"] == 8
    assert stats["tokens_prefix_order_16_blocks"] == 0.0


def test_shared_prefix_share_by_hand():
    assert common_prefix_length([1, 2, 3], [1, 2, 4]) == 2
    # 0 + 2 + 3 shared of 4 + 4 + 3 elements
    assert shared_prefix_share([[1, 2, 3, 4], [1, 2, 9, 9], [1, 2, 9]]) == pytest.approx(5 / 11)
    assert shared_prefix_share([[1, 2, 3, 4], [1, 2, 3, 5]], block_size=2) == pytest.approx(2 / 8)
    assert shared_prefix_share([]) == 0.0 and shared_prefix_share([[]]) == 0.0


def test_prefix_order_beats_table_order_on_real_prompts():
    table = prompt_table(None, languages=("en", "de", "zh", "ar"), shots=2, max_items=12)
    texts = table["prompt"].tolist()
    ordered = [texts[i] for i in prefix_order(texts)]
    assert shared_prefix_share(ordered) >= shared_prefix_share(texts) > 0.5


def test_cli_prefix_stats(tmp_path, tiny_models):
    prompts = tmp_path / "p.parquet"
    prompt_table(tiny_models["qwen2-chat"], shots=2, max_items=3).to_parquet(prompts)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "xmrc",
            "prefix-stats",
            "--prompts",
            str(prompts),
            "--tokenizer",
            tiny_models["qwen2-chat"],
            "--out",
            str(tmp_path / "s.csv"),
        ],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(ROOT / "src")},
    )
    assert result.returncode == 0, result.stderr
    stats = pd.read_csv(tmp_path / "s.csv")
    assert stats.loc[0, "n"] == 15 and 0.5 < stats.loc[0, "tokens_prefix_order"] < 1
    missing = subprocess.run(
        [sys.executable, "-m", "xmrc", "prefix-stats", "--prompts", str(tmp_path / "no")],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(ROOT / "src")},
    )
    assert missing.returncode == 2 and "file not found" in missing.stderr
