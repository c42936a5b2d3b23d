"""Relevance conservation of the layer-wise relevance pass: how much of the explained logit each depth holds.

LRP redistributes the explained output over the inputs of each layer: if it conserved relevance exactly, the
signed relevance summed over every input token representation at depth i (0: embeddings, i: output of
decoder layer i) would equal the explained logit at every depth. AttnLRP conserves it through linear layers,
the residual stream, normalisations (identity rule) and the gated MLP (uniform rule), but not through the
softmax of the attention scores, whose rule leaves a bias term that absorbs relevance; so the sum drifts from
the logit layer by layer, from the output down (measured on the real models: docs/layers.md, "MRD and
conservation"). LXT's CP-LRP variant passes no relevance through the scores and conserves it exactly in a
model without biases, which the unit tests use to check this bookkeeping.

The relevance job keeps per item the explained logit (`target_logit`) and the sums (`relevance_sum`, N + 1
floats); `conservation_table` summarises them per depth, and `summary_line` in one line for the job's log.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

CONSERVATION_COLUMNS = ["layer", "relevance_sum", "explained_logit", "ratio"]
TABLE_KEY = ["model", "shots", "prompt_format"]
TABLE_COLUMNS = [*TABLE_KEY, "layer", "n", "relevance_sum", "explained_logit", "ratio_median", "ratio_min", "ratio_max"]


def relevance_sums(result) -> np.ndarray:
    """The signed relevance summed over the prompt's tokens at each depth 0..N (`LayerRelevance.relevance`
    rows), in float64."""
    return np.asarray(result.relevance, dtype=np.float64).sum(axis=1)


def conservation(result) -> pd.DataFrame:
    """One row per depth 0..N of one explained prompt: layer, relevance_sum, explained_logit, ratio (the sum
    over the logit; 1 where relevance is conserved)."""
    sums = relevance_sums(result)
    logit = float(result.target_logit)
    ratio = sums / logit if logit else np.full(len(sums), np.nan)
    return pd.DataFrame(
        dict(layer=np.arange(len(sums)), relevance_sum=sums, explained_logit=logit, ratio=ratio),
        columns=CONSERVATION_COLUMNS,
    )


def conservation_table(relevance: pd.DataFrame) -> pd.DataFrame:
    """Per model, setting and depth 0..N, over the explained items of a relevance table: their number, the mean
    relevance sum and explained logit, and the median, min and max of the per-item ratio."""
    items = relevance.drop_duplicates([*TABLE_KEY, "context_lang", "question_lang", "id"])
    items = items[items["relevance_sum"].map(len) > 0]
    if items.empty:
        return pd.DataFrame(columns=TABLE_COLUMNS)
    long = items[[*TABLE_KEY, "target_logit", "relevance_sum"]].explode("relevance_sum")
    long["layer"] = long.groupby(level=0).cumcount()
    long["relevance_sum"] = long["relevance_sum"].astype(float)
    long["ratio"] = long["relevance_sum"] / long["target_logit"].astype(float)
    table = (
        long.groupby([*TABLE_KEY, "layer"], sort=False)
        .agg(
            n=("ratio", "size"),
            relevance_sum=("relevance_sum", "mean"),
            explained_logit=("target_logit", "mean"),
            ratio_median=("ratio", "median"),
            ratio_min=("ratio", "min"),
            ratio_max=("ratio", "max"),
        )
        .reset_index()
    )
    return table[TABLE_COLUMNS]


def summary_line(relevance: pd.DataFrame) -> str:
    """Conservation of a relevance table in one line: the median ratio at the embeddings and at depth N, and
    its range over depths (empty when nothing was explained)."""
    table = conservation_table(relevance)
    if table.empty:
        return ""
    parts = []
    for key, rows in table.groupby(TABLE_KEY, sort=False):
        ratio = rows.set_index("layer")["ratio_median"]
        worst = int((ratio - 1).abs().idxmax())
        parts.append(
            f"{key[0]} {key[1]}-shot {key[2]}: relevance sum / explained logit (median of {int(rows['n'].max())} "
            f"items) {ratio.iloc[0]:.2f} at the embeddings, {ratio.iloc[-1]:.2f} at depth {int(ratio.index[-1])}, "
            f"{ratio.min():.2f}-{ratio.max():.2f} over depths (farthest from 1: depth {worst})"
        )
    return "; ".join(parts)
