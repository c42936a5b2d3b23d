"""How many paragraphs a study needs: the paired differences the findings test, sized from a run's variances.

For a paired difference d (e.g. en-en − mean en-x F1 of an item) measured on k items in each of P paragraphs,
the paragraph bootstrap's interval of the mean has half-width ~ z · sqrt((σ²_between + σ²_within / k) / P),
where σ²_between is the variance of the paragraphs' true means and σ²_within that of the items around their
paragraph's mean (one-way random effects, method of moments, from the run's own items). Solving for P gives
the paragraphs a target half-width needs; with k = 1 (one item per paragraph) σ² is the items' whole variance.
The estimate is checked against the half-width the paragraph bootstrap actually gives on the run's items.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from xmrc import tables
from xmrc.exceptions import XmrcError
from xmrc.intervals import chosen_formats
from xmrc.io import read_parquet
from xmrc.paper.clusters import paragraph_of, paragraph_replicates
from xmrc.paper.findings import tuned_of
from xmrc.paper.measures import PAIRS, score_pairs

Z95 = 1.959964


@dataclass(frozen=True)
class Components:
    """Variance components of one per-item difference: paragraphs, items, the mean, σ²_between, σ²_within."""

    paragraphs: int
    items: int
    mean: float
    between: float
    within: float

    def half_width(self, paragraphs: float, per_paragraph: int = 1, z: float = Z95) -> float:
        return z * float(np.sqrt((self.between + self.within / per_paragraph) / paragraphs))

    def paragraphs_for(self, half_width: float, per_paragraph: int = 1, z: float = Z95) -> int:
        return int(np.ceil((z / half_width) ** 2 * (self.between + self.within / per_paragraph)))


def components(values: pd.Series, paragraphs: pd.Series) -> Components:
    """One-way random-effects components of `values` (index: item ids) grouped by `paragraphs` (id ->
    paragraph); σ²_between is floored at 0."""
    values = values.dropna()
    if len(values) < 2:
        raise XmrcError("at least two items are needed to estimate a variance")
    groups = paragraphs.reindex(values.index.astype(str))
    if groups.isna().any():
        raise XmrcError(f"no paragraph for item {groups.index[groups.isna()][0]!r}")
    frame = pd.DataFrame({"v": values.to_numpy(), "g": groups.to_numpy()})
    sizes = frame.groupby("g")["v"].size()
    means = frame.groupby("g")["v"].mean()
    a, n = len(sizes), len(frame)
    within = float(((frame["v"] - frame["g"].map(means)) ** 2).sum() / (n - a)) if n > a else float(values.var())
    if a < 2:
        return Components(a, n, float(values.mean()), 0.0, within)
    between_ms = float((sizes * (means - values.mean()) ** 2).sum() / (a - 1))
    n0 = (n - float((sizes**2).sum()) / n) / (a - 1)  # the mean group size, corrected for unequal sizes
    between = max(0.0, (between_ms - within) / n0) if n > a else float(values.var())
    return Components(a, n, float(values.mean()), between, within if n > a else 0.0)


def bootstrap_half_width(values: pd.Series, paragraphs: pd.Series, resamples: int = 4000, seed: int = 0) -> float:
    """The half-width of the 95% paragraph-bootstrap interval of the mean of `values` (for the check)."""
    reps = paragraph_replicates(values.dropna().to_frame("d"), paragraphs, resamples, seed)
    low, high = np.quantile(reps.draws["d"], [0.025, 0.975])
    return float((high - low) / 2)


def power_table(
    differences: dict[str, pd.Series], paragraphs: pd.Series, target: float = 3.0, available: int = 240
) -> pd.DataFrame:
    """Per difference: its components, the bootstrap half-width now, the paragraphs needed for `target` with
    one item per paragraph and with every item of a paragraph (its mean count in the run), and the half-width
    reached with all `available` paragraphs at one item each."""
    rows = []
    for name, values in differences.items():
        c = components(values, paragraphs)
        per = max(1, round(c.items / c.paragraphs))
        rows.append(
            {
                "difference": name,
                "paragraphs": c.paragraphs,
                "items": c.items,
                "mean": c.mean,
                "sd_between": np.sqrt(c.between),
                "sd_within": np.sqrt(c.within),
                "half_width_now": bootstrap_half_width(values, paragraphs),
                "half_width_model_now": c.half_width(c.paragraphs, per),
                "paragraphs_for_target_1_item": c.paragraphs_for(target, 1),
                f"paragraphs_for_target_{per}_items": c.paragraphs_for(target, per),
                f"half_width_{available}_paragraphs_1_item": c.half_width(available, 1),
            }
        )
    return pd.DataFrame(rows)


# The differences a study is sized for, named for people, by finding key (xmrc.paper.measures.PAIRS).
DIFFERENCES = {
    "gap": "en-en − en-x",
    "monolingual": "x-x − en-x",
    "shots": "2-shot − 0-shot (en-x)",
    "qt_lora": "tuned − base (en-x)",
}


def run_differences(results, model: str) -> tuple[dict[str, pd.Series], pd.Series]:
    """The paired differences the findings test, per item of a run (F1 points, each setting in its chosen
    format): en-en − en-x, x-x − en-x, 2-shot − 0-shot en-x, tuned − base en-x; and the items' paragraphs."""
    items = read_parquet(Path(results) / "tables" / "item_scores.parquet")
    chosen = chosen_formats(tables.direction_scores(items))
    if (model, 2) not in chosen:
        raise XmrcError(f"{results}: no 2-shot scores of {model!r}")
    pairs = score_pairs(items, chosen, model, tuned_of(Path(results), model))
    out = {DIFFERENCES[key]: frame[b] - frame[a] for key, frame in pairs.items() for b, a in [PAIRS[key]]}
    return out, paragraph_of(items["id"])
