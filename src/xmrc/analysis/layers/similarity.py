"""Cross-lingual hidden-state similarity ratio (PAPER.md, "Layer-wise analysis").

S(en, x) = mean_k cos(e_k, x_k) / mean_{i<j} cos(x_i, x_j)

for K parallel samples: e_k is a hidden state of the k-th sample in the English run, x_k of the same
sample in the en-x run. The numerator is how close each sample stays to its English twin, the denominator
how close unrelated samples of language x are to each other, so S > 1 means the representation carries
the sample's content across languages rather than only "this is language x".
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from xmrc.analysis.layers.groups import GROUP_KEY
from xmrc.exceptions import XmrcError
from xmrc.io import read_array, read_table

# Norms below this count as zero vectors: their cosine is undefined.
_EPS = 1e-12


def _unit_rows(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float64)
    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(norms > _EPS, vectors / norms, np.nan)


def paired_cosine(english: np.ndarray, other: np.ndarray) -> np.ndarray:
    """cos(e_k, x_k) for every k: shape (..., K)."""
    return np.sum(_unit_rows(english) * _unit_rows(other), axis=-1)


def mean_pairwise_cosine(vectors: np.ndarray) -> np.ndarray:
    """Mean of cos(x_i, x_j) over the K(K-1)/2 pairs i < j; works on (..., K, d) stacks (e.g. per layer)."""
    unit = _unit_rows(vectors)
    k = unit.shape[-2]
    if k < 2:
        return np.full(unit.shape[:-2], np.nan)
    # Sum over all ordered pairs = |sum of unit vectors|^2 - K (the diagonal); half of it is the i<j sum.
    total = unit.sum(axis=-2)
    pair_sum = (np.sum(total * total, axis=-1) - np.sum(unit * unit, axis=(-2, -1))) / 2
    return pair_sum / (k * (k - 1) / 2)


def similarity_ratios(english: np.ndarray, other: np.ndarray) -> np.ndarray:
    """S(en, x) for stacks of shape (..., K, d), e.g. (layers, K, d) -> one ratio per layer."""
    english, other = np.asarray(english), np.asarray(other)
    if english.shape != other.shape or english.ndim < 2:
        raise ValueError(f"english and other must both have shape (..., K, d); got {english.shape} and {other.shape}")
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.mean(paired_cosine(english, other), axis=-1) / mean_pairwise_cosine(other)


def similarity_ratio(english, other) -> float:
    """S(en, x) for arrays of shape (K, d): NaN when K < 2 (no pairs) or a vector is zero."""
    english, other = np.asarray(english), np.asarray(other)
    if english.ndim != 2:
        raise ValueError(f"english and other must have shape (K, d); got {english.shape}")
    return float(similarity_ratios(english, other))


SIMILARITY_COLUMNS = [*GROUP_KEY, "fallback", "lang", "part", "layer", "relative_depth", "ratio", "k"]


def similarity_table(vectors: np.ndarray, index, members, parts=("question", "context", "last")):
    """S(en, x) per group, language x != en, part and layer, from pooled hidden states.

    `vectors`: (prompts, L + 1, parts, d) as written by `xmrc.analysis.layers.hidden_states`; `index`: its row
    table (context_lang, question_lang, id); `members`: the groups of this model and setting
    (`xmrc.analysis.layers.groups`). Items missing in either run, or whose vectors of a part are NaN in either (the
    last token of an empty answer, `xmrc.analysis.layers.hidden_states`), are left out; k is the number used.
    """
    rows = {
        (q, i): r
        for r, (c, q, i) in enumerate(zip(index["context_lang"], index["question_lang"], index["id"]))
        if c == "en"
    }
    depth = vectors.shape[1] - 1
    languages = [lang for lang in dict.fromkeys(index["question_lang"]) if lang != "en"]
    records = []
    for (model, model_name, shots, fmt, group), group_rows in members.groupby(
        ["model", "model_name", "shots", "prompt_format", "group"], sort=False
    ):
        fallback = bool(group_rows["fallback"].iloc[0])
        for lang in languages:
            ids = [i for i in group_rows["id"] if ("en", i) in rows and (lang, i) in rows]
            shape = (len(ids),) + vectors.shape[1:]
            english = np.asarray(vectors[[rows[("en", i)] for i in ids]], dtype=np.float32).reshape(shape)
            other = np.asarray(vectors[[rows[(lang, i)] for i in ids]], dtype=np.float32).reshape(shape)
            for slot, part in enumerate(parts):
                # (K, L+1, d) of the items whose vectors exist in both runs -> one ratio per layer
                usable = np.isfinite(english[:, :, slot]).all(axis=(1, 2)) & np.isfinite(other[:, :, slot]).all(
                    axis=(1, 2)
                )
                k = int(usable.sum())
                ratios = (
                    similarity_ratios(
                        english[usable, :, slot].transpose(1, 0, 2), other[usable, :, slot].transpose(1, 0, 2)
                    )
                    if k
                    else np.full(depth + 1, np.nan)
                )
                for layer in range(depth + 1):
                    records.append(
                        dict(
                            model=model,
                            model_name=model_name,
                            shots=shots,
                            prompt_format=fmt,
                            group=group,
                            fallback=fallback,
                            lang=lang,
                            part=part,
                            layer=layer,
                            relative_depth=layer / depth if depth else 0.0,
                            ratio=float(ratios[layer]),
                            k=k,
                        )
                    )
    return pd.DataFrame(records, columns=SIMILARITY_COLUMNS)


INDEX_COLUMNS = ["model", "shots", "prompt_format", "context_lang", "question_lang", "id"]


def similarity_of_runs(vector_files: list[str], index_files: list[str], members: pd.DataFrame) -> pd.DataFrame:
    """similarity_table of each (vectors, index) file pair of layer-hidden, against its model's and setting's
    groups in `members`, as one table."""
    if len(vector_files) != len(index_files):
        raise XmrcError("--vectors and --index must name the same number of files, in the same order")
    tables = []
    for vectors_path, index_path in zip(vector_files, index_files):
        index = read_table(index_path, required=INDEX_COLUMNS)
        vectors = read_array(vectors_path, mmap_mode="r")  # one part and layer at a time reaches memory
        if vectors.ndim != 4 or vectors.shape[0] != len(index):
            raise XmrcError(f"{vectors_path}: shape {vectors.shape} does not match {len(index)} rows of {index_path}")
        if index.empty:
            continue
        key = index.iloc[0]
        mine = members[
            (members["model"] == key["model"])
            & (members["shots"] == key["shots"])
            & (members["prompt_format"] == key["prompt_format"])
        ]
        tables.append(similarity_table(vectors, index, mine))
    return pd.concat(tables, ignore_index=True) if tables else pd.DataFrame()
