"""Cross-lingual hidden-state similarity ratio (PAPER.md, "Layer-wise analysis"), raw and mean-centred.

S(en, x) = mean_k cos(e_k, x_k) / mean_{i<j} cos(x_i, x_j)

for K parallel samples: e_k is a hidden state of the k-th sample in the English run, x_k of the same
sample in the en-x run. The numerator (`sample_cos`) is how close each sample stays to its English twin,
the denominator (`language_cos`) how close unrelated samples of language x are to each other, so S > 1
means the representation carries the sample's content across languages rather than only "this is
language x".

Raw hidden states share a dominant direction (anisotropy, Ethayarajh 2019): every cosine between them is
near 1, and a ratio of two such cosines is near 1 whatever the representation carries. So S is also computed
on mean-centred states: from every vector of a layer and part, the mean of that layer and part over all
prompts of the model's and setting's hidden-state file (the English runs and the en-x runs of every
language, each group's items together; prompts whose vectors of the part are NaN left out) is subtracted
before the cosines. What the states share then no longer counts. The centred ratio is NaN where the centred
language-wise cosine is not positive (no baseline to divide by).

Files (`layers/`, written by layer-similarity):
  similarity.csv          one row per model, setting, group, language x (not en), part and layer:
                          model, model_name, shots, prompt_format, group, fallback, lang, part, layer (0 = the
                          embeddings), relative_depth (layer / layers), ratio (S on raw states, the paper's),
                          k (items used), sample_cos, language_cos (its numerator and denominator),
                          ratio_centred, sample_cos_centred, language_cos_centred (the same on centred states)
  similarity_items.parquet  one row per (model, setting, group, language, part, layer) and item k of it:
                          model, model_name, shots, prompt_format, group, lang, part, layer, relative_depth,
                          id, cos (cos(e_k, x_k), raw), cos_centred (centred). mean(cos) over a row's k items
                          / language_cos of similarity.csv is its ratio (centred: cos_centred and
                          language_cos_centred), so a finding can resample items (clustered by paragraph) with
                          the language-wise denominator held fixed.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from xmrc.analysis.layers.groups import GROUP_KEY
from xmrc.exceptions import XmrcError
from xmrc.io import read_array, read_table

# Norms below this count as zero vectors: their cosine is undefined.
_EPS = 1e-12
# Prompts per block when the layer means are summed over a memory-mapped hidden-state file.
_MEAN_BLOCK = 256
PARTS = ("question", "context", "last")


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


def layer_means(vectors: np.ndarray) -> np.ndarray:
    """float64 (L + 1, parts, d): the mean of each layer's and part's vectors over all prompts of a hidden-state
    array (prompts, L + 1, parts, d), prompts whose vector is NaN left out (NaN where none is left). Summed in
    blocks, so a memory-mapped file never reaches memory whole."""
    total = np.zeros(vectors.shape[1:], dtype=np.float64)
    count = np.zeros(vectors.shape[1:-1], dtype=np.int64)
    for start in range(0, vectors.shape[0], _MEAN_BLOCK):
        block = np.asarray(vectors[start : start + _MEAN_BLOCK], dtype=np.float64)
        finite = np.isfinite(block).all(axis=-1)
        total += np.where(finite[..., None], block, 0.0).sum(axis=0)
        count += finite.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count[..., None] > 0, total / count[..., None], np.nan)


def cosine_parts(english: np.ndarray, other: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(cos(e_k, x_k) of shape (..., K), mean_{i<j} cos(x_i, x_j) of shape (...)) for (..., K, d) stacks: the
    ratio's numerator before its mean over k, and its denominator."""
    return paired_cosine(english, other), mean_pairwise_cosine(other)


def _ratio(sample_cos: np.ndarray, language_cos: np.ndarray, positive: bool = False) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = sample_cos / language_cos
    return np.where(language_cos > 0, ratio, np.nan) if positive else ratio


SIMILARITY_COLUMNS = [*GROUP_KEY, "fallback", "lang", "part", "layer", "relative_depth", "ratio", "k"]
COSINE_COLUMNS = ["sample_cos", "language_cos", "ratio_centred", "sample_cos_centred", "language_cos_centred"]
TABLE_COLUMNS = SIMILARITY_COLUMNS + COSINE_COLUMNS
ITEM_TABLE_COLUMNS = [*GROUP_KEY, "lang", "part", "layer", "relative_depth", "id", "cos", "cos_centred"]


def similarity_tables(
    vectors: np.ndarray, index, members, parts=PARTS, means: np.ndarray | None = None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(similarity table, per-item table) of one hidden-state file: S(en, x) raw and centred, with both
    cosines, per group, language x != en, part and layer, and the paired cosines of every item
    (see the module docstring for the columns).

    `vectors`: (prompts, L + 1, parts, d) as written by `xmrc.analysis.layers.hidden_states`; `index`: its row
    table (context_lang, question_lang, id); `members`: the groups of this model and setting
    (`xmrc.analysis.layers.groups`); `means`: layer_means of `vectors` (computed when not given). Items missing
    in either run, or whose vectors of a part are NaN in either (the last token of an empty answer,
    `xmrc.analysis.layers.hidden_states`), are left out; k is the number used.
    """
    rows = {
        (q, i): r
        for r, (c, q, i) in enumerate(zip(index["context_lang"], index["question_lang"], index["id"]))
        if c == "en"
    }
    means = layer_means(vectors) if means is None else means
    depth = vectors.shape[1] - 1
    layers = np.arange(depth + 1)
    relative = layers / depth if depth else np.zeros(depth + 1)
    languages = [lang for lang in dict.fromkeys(index["question_lang"]) if lang != "en"]
    records, item_frames = [], []
    for (model, model_name, shots, fmt, group), group_rows in members.groupby(GROUP_KEY, sort=False):
        key = dict(model=model, model_name=model_name, shots=shots, prompt_format=fmt, group=group)
        fallback = bool(group_rows["fallback"].iloc[0])
        for lang in languages:
            ids = [i for i in dict.fromkeys(group_rows["id"]) if ("en", i) in rows and (lang, i) in rows]
            shape = (len(ids),) + vectors.shape[1:]
            english = np.asarray(vectors[[rows[("en", i)] for i in ids]], dtype=np.float32).reshape(shape)
            other = np.asarray(vectors[[rows[(lang, i)] for i in ids]], dtype=np.float32).reshape(shape)
            for slot, part in enumerate(parts):
                # (L+1, K, d) of the items whose vectors exist in both runs -> cosines per layer
                usable = np.isfinite(english[:, :, slot]).all(axis=(1, 2)) & np.isfinite(other[:, :, slot]).all(
                    axis=(1, 2)
                )
                k = int(usable.sum())
                e = english[usable, :, slot].transpose(1, 0, 2)
                x = other[usable, :, slot].transpose(1, 0, 2)
                centre = means[:, slot][:, None, :].astype(np.float32)
                cos, language_cos = cosine_parts(e, x)  # language_cos is NaN for k < 2
                cos_c, language_cos_c = cosine_parts(e - centre, x - centre)
                nan = np.full(depth + 1, np.nan)
                sample_cos, sample_cos_c = (cos.mean(axis=-1), cos_c.mean(axis=-1)) if k else (nan, nan)
                ratio, ratio_c = _ratio(sample_cos, language_cos), _ratio(sample_cos_c, language_cos_c, positive=True)
                for layer in layers:
                    records.append(
                        dict(
                            key,
                            fallback=fallback,
                            lang=lang,
                            part=part,
                            layer=int(layer),
                            relative_depth=float(relative[layer]),
                            ratio=float(ratio[layer]),
                            k=k,
                            sample_cos=float(sample_cos[layer]),
                            language_cos=float(language_cos[layer]),
                            ratio_centred=float(ratio_c[layer]),
                            sample_cos_centred=float(sample_cos_c[layer]),
                            language_cos_centred=float(language_cos_c[layer]),
                        )
                    )
                if k:
                    item_frames.append(
                        pd.DataFrame(
                            dict(
                                key,
                                lang=lang,
                                part=part,
                                layer=np.repeat(layers, k),
                                relative_depth=np.repeat(relative, k),
                                id=np.tile(np.asarray(ids, dtype=object)[usable], depth + 1),
                                cos=cos.reshape(-1),
                                cos_centred=cos_c.reshape(-1),
                            )
                        )
                    )
    table = pd.DataFrame(records, columns=TABLE_COLUMNS)
    items = pd.concat(item_frames, ignore_index=True) if item_frames else pd.DataFrame(columns=ITEM_TABLE_COLUMNS)
    return table, items[ITEM_TABLE_COLUMNS]


def similarity_table(vectors: np.ndarray, index, members, parts=PARTS) -> pd.DataFrame:
    """The similarity table of similarity_tables alone."""
    return similarity_tables(vectors, index, members, parts)[0]


INDEX_COLUMNS = ["model", "shots", "prompt_format", "context_lang", "question_lang", "id"]


def similarity_of_runs(
    vector_files: list[str], index_files: list[str], members: pd.DataFrame
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """similarity_tables of each (vectors, index) file pair of layer-hidden, against its model's and setting's
    groups in `members`, as one (similarity table, per-item table). A setting given twice (a model's `best`
    format also named: the same states) counts once."""
    if len(vector_files) != len(index_files):
        raise XmrcError("--vectors and --index must name the same number of files, in the same order")
    tables, item_tables, seen = [], [], set()
    for vectors_path, index_path in zip(vector_files, index_files):
        index = read_table(index_path, required=INDEX_COLUMNS)
        vectors = read_array(vectors_path, mmap_mode="r")  # one part and layer at a time reaches memory
        if vectors.ndim != 4 or vectors.shape[0] != len(index):
            raise XmrcError(f"{vectors_path}: shape {vectors.shape} does not match {len(index)} rows of {index_path}")
        if index.empty:
            continue
        key = index.iloc[0]
        setting = (key["model"], int(key["shots"]), key["prompt_format"])
        if setting in seen:
            continue
        seen.add(setting)
        mine = members[
            (members["model"] == key["model"])
            & (members["shots"] == key["shots"])
            & (members["prompt_format"] == key["prompt_format"])
        ]
        table, items = similarity_tables(vectors, index, mine)
        tables.append(table)
        item_tables.append(items)
    if not tables:
        return pd.DataFrame(columns=TABLE_COLUMNS), pd.DataFrame(columns=ITEM_TABLE_COLUMNS)
    return pd.concat(tables, ignore_index=True), pd.concat(item_tables, ignore_index=True)
