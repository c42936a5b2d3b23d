"""The paragraph bootstrap: XQuAD's independent unit is the paragraph, not the item.

XQuAD's 1190 questions sit in 240 paragraphs (48 articles); the questions of one paragraph share its context,
and its 12 translations share everything but the language. A row per item x language is not an independent
draw, so a finding resamples **paragraphs**: every item and every language of a drawn paragraph moves together,
and two settings compared on the same items are compared inside each resampled paragraph (paired).

How: a finding reduces its rows to one row per item (its per-item quantities as columns, e.g. the en-en F1 and
the mean en-x F1 of the item), then `paragraph_replicates` sums those columns per paragraph; a bootstrap draw of
C paragraphs is a vector of counts, and the resampled mean of a column is sum(counts x paragraph sums) /
sum(counts x paragraph sizes): the mean over the items of the drawn paragraphs, repeats counted.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from xmrc.bootstrap import resampled_counts
from xmrc.data import article_map
from xmrc.exceptions import XmrcError


def paragraph_of(ids) -> pd.Series:
    """id -> its XQuAD paragraph ("title#paragraph_index", from the packaged map of all 1190 items); an id the
    map does not know (another dataset) is a paragraph of its own, which can only make intervals narrower than
    they should be when such items share contexts: the findings table counts them."""
    ids = pd.Index(pd.unique(pd.Series(list(ids), dtype=str)))
    known = article_map().drop_duplicates("id").set_index("id")
    found = known.reindex(ids)
    labels = found["title"].astype(str) + "#" + found["paragraph_index"].astype("Int64").astype(str)
    return labels.where(found["title"].notna(), "item#" + ids.to_series(index=ids)).rename("paragraph")


@dataclass(frozen=True)
class Replicates:
    """Per-item quantities resampled by paragraph: `point` their means over the items, `draws` (resamples x
    columns) their means in each bootstrap draw of paragraphs; `items` and `paragraphs` the counts."""

    point: pd.Series
    draws: pd.DataFrame
    items: int
    paragraphs: int


def paragraph_replicates(
    per_item: pd.DataFrame, paragraphs: pd.Series, resamples: int, seed: int, unit: str = "paragraph"
) -> Replicates:
    """Bootstrap means of `per_item`'s columns (index: item ids; rows with a NaN are left out) over
    `resamples` draws of its paragraphs (`paragraphs`: id -> paragraph, e.g. paragraph_of). unit="item"
    resamples items as if independent (kept only to show what clustering changes)."""
    frame = per_item.dropna()
    if frame.empty:
        raise XmrcError("no item has every quantity this finding compares")
    if unit == "paragraph":
        labels = paragraphs.reindex(frame.index.astype(str))
        if labels.isna().any():
            raise XmrcError(f"no paragraph for item {labels.index[labels.isna()][0]!r}")
        codes, _ = pd.factorize(labels.to_numpy())
    elif unit == "item":
        codes = np.arange(len(frame))
    else:
        raise XmrcError(f"unknown resampling unit {unit!r} (paragraph or item)")
    clusters = int(codes.max()) + 1
    values = frame.to_numpy(dtype=np.float64)
    sums = np.zeros((clusters, values.shape[1]))
    np.add.at(sums, codes, values)
    sizes = np.bincount(codes, minlength=clusters).astype(np.float64)
    draws = []
    for counts in resampled_counts(clusters, resamples, seed):
        draws.append((counts @ sums) / (counts @ sizes)[:, None])
    return Replicates(
        point=frame.mean(),
        draws=pd.DataFrame(np.vstack(draws), columns=frame.columns),
        items=len(frame),
        paragraphs=clusters,
    )
