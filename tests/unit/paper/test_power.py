"""Sizing a study (xmrc.paper.power): the variance components come back from data built with known ones, and
the predicted half-width agrees with the paragraph bootstrap's."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from xmrc.exceptions import XmrcError
from xmrc.paper.power import bootstrap_half_width, components, power_table


def _clustered(between: float, within: float, paragraphs: int = 200, per: int = 5, seed: int = 0):
    rng = np.random.default_rng(seed)
    ids = [f"p{p}q{q}" for p in range(paragraphs) for q in range(per)]
    effects = np.repeat(rng.normal(0, between, paragraphs), per)
    values = pd.Series(10 + effects + rng.normal(0, within, len(ids)), index=ids)
    return values, pd.Series({i: i.split("q")[0] for i in ids})


def test_the_components_come_back_from_data_built_with_them():
    values, paragraphs = _clustered(between=8.0, within=20.0)
    c = components(values, paragraphs)
    assert c.paragraphs == 200 and c.items == 1000
    assert np.sqrt(c.between) == pytest.approx(8.0, rel=0.2) and np.sqrt(c.within) == pytest.approx(20.0, rel=0.1)


def test_the_predicted_half_width_is_the_bootstraps():
    values, paragraphs = _clustered(between=8.0, within=20.0, paragraphs=60)
    c = components(values, paragraphs)
    assert c.half_width(60, 5) == pytest.approx(bootstrap_half_width(values, paragraphs), rel=0.15)
    # the paragraphs a target needs give that target back
    assert c.half_width(c.paragraphs_for(3.0, 1), 1) <= 3.0 < c.half_width(c.paragraphs_for(3.0, 1) - 1, 1)


def test_the_table_sizes_every_difference_and_ignoring_paragraphs_would_undersize():
    values, paragraphs = _clustered(between=15.0, within=5.0, paragraphs=40)
    table = power_table({"gap": values}, paragraphs).iloc[0]
    naive = 1.959964 * values.std() / np.sqrt(len(values))  # items as if independent
    assert table["half_width_now"] > 2 * naive
    assert table["paragraphs_for_target_1_item"] > 40


def test_a_single_item_is_one_line():
    with pytest.raises(XmrcError, match="at least two items"):
        components(pd.Series([1.0], index=["a"]), pd.Series({"a": "p"}))
