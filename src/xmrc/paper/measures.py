"""θ of each finding (`xmrc.paper.claims`) and its paragraph-bootstrap draws, from a run's outputs.

Each measure reduces its rows to one row per XQuAD item (the item's quantities over its languages as
columns), resamples paragraphs (`xmrc.paper.clusters`) and computes θ from the resampled column means, so that
a ratio of sums (a rate of wrong answers) or the smaller of two contrasts stays what it is in every draw.
A measure returns None when the run lacks what it needs; `Measured.blocked` says why a measured finding must
not be decided (a judge that fails its calibration gate, a similarity whose baseline is not positive).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from xmrc.bootstrap import BootstrapSettings
from xmrc.errors import KEYS
from xmrc.intervals import scenario_items
from xmrc.paper.claims import ARC_WINDOW, DECLINE_FROM
from xmrc.paper.clusters import paragraph_replicates

# The fewest paragraphs a finding is decided on: a percentile bootstrap over fewer clusters has too few distinct
# draws to reach its nominal level (with 3 paragraphs whose items agree, every draw is the same number).
MIN_PARAGRAPHS = 10
# The agreement (%) of the judge's "blank" with the rule's (an empty answer) a judge needs for its verdicts
# to count: the calibration gate on the cases a rule decides.
JUDGE_GATE = 80.0


@dataclass(frozen=True)
class Measured:
    key: str
    estimate: float
    draws: np.ndarray
    items: int
    paragraphs: int
    ours: str  # the parts of θ, for people
    blocked: str | None = None


@dataclass(frozen=True)
class Sample:
    """What every measure shares: the item -> paragraph map, the bootstrap settings, the resampling unit."""

    paragraphs: pd.Series
    settings: BootstrapSettings
    unit: str = "paragraph"


def measure(key: str, per_item: pd.DataFrame, sample: Sample, theta: Callable, ours: Callable) -> Measured:
    """θ = theta(column means) on the items and in every paragraph draw; ours(column means) describes it."""
    reps = paragraph_replicates(
        per_item, sample.paragraphs, sample.settings.resamples, sample.settings.seed, sample.unit
    )
    point = reps.point.to_frame().T
    estimate = float(np.asarray(theta(point), dtype=float)[0])
    draws = np.asarray(theta(reps.draws), dtype=float)
    blocked = None
    if reps.paragraphs < MIN_PARAGRAPHS:
        blocked = f"too few paragraphs to resample ({reps.paragraphs} < {MIN_PARAGRAPHS})"
    return Measured(key, estimate, draws, reps.items, reps.paragraphs, ours(reps.point), blocked)


def _diff(a: str, b: str) -> Callable:
    return lambda means: means[a] - means[b]


# --- Scores --------------------------------------------------------------------------------------------------


# The paired settings of the score findings: key -> (side b, side a), θ = b − a per item.
PAIRS = {
    "gap": ("en-en", "en-x"),
    "monolingual": ("x-x", "en-x"),
    "shots": ("2-shot", "0-shot"),
    "qt_lora": ("tuned", "base"),
}


def score_pairs(items: pd.DataFrame, chosen: dict, model: str, tuned: str | None = None) -> dict[str, pd.DataFrame]:
    """Per score finding the run allows, its two sides per item (F1 in percent, columns PAIRS[key], items where
    both exist), each setting in its chosen format: 2-shot en-en, en-x and x-x of `model`, its 0-shot en-x, and
    the 2-shot en-x of `tuned` (a finetune of it)."""
    if (model, 2) not in chosen:
        return {}
    two = scenario_items(items, model, 2, chosen[(model, 2)])
    sides = {"gap": two[["en-en", "en-x"]], "monolingual": two[["x-x", "en-x"]]}
    if (model, 0) in chosen:
        zero = scenario_items(items, model, 0, chosen[(model, 0)])
        sides["shots"] = pd.DataFrame({"2-shot": two["en-x"], "0-shot": zero["en-x"]})
    if tuned is not None and (tuned, 2) in chosen:
        other = scenario_items(items, tuned, 2, chosen[(tuned, 2)])
        sides["qt_lora"] = pd.DataFrame({"tuned": other["en-x"], "base": two["en-x"]})
    sides = {key: frame.dropna() for key, frame in sides.items()}
    return {key: frame for key, frame in sides.items() if len(frame)}


def _pair_measure(key: str, frame: pd.DataFrame, sample: Sample, ours: Callable) -> Measured:
    return measure(key, frame, sample, _diff(*PAIRS[key]), ours)


def score_measures(items: pd.DataFrame, chosen: dict, model: str, sample: Sample) -> list[Measured]:
    """gap, monolingual and shots from the item scores (F1 in percent), each setting in its chosen format."""
    texts = {
        "gap": lambda m: f"en-en {m['en-en']:.2f}, mean en-x {m['en-x']:.2f}",
        "monolingual": lambda m: f"mean x-x {m['x-x']:.2f}, mean en-x {m['en-x']:.2f}",
        "shots": lambda m: f"mean en-x 2-shot {m['2-shot']:.2f}, 0-shot {m['0-shot']:.2f}",
    }
    pairs = score_pairs(items, chosen, model)
    return [_pair_measure(key, pairs[key], sample, text) for key, text in texts.items() if key in pairs]


def finetune_measure(items: pd.DataFrame, chosen: dict, base: str, tuned: str, sample: Sample) -> Measured | None:
    """qt_lora: the tuned model against its base on the items both were evaluated on (2-shot en-x)."""
    frame = score_pairs(items, chosen, base, tuned).get("qt_lora")
    if frame is None:
        return None
    return _pair_measure(
        "qt_lora", frame, sample, lambda m: f"{tuned} {m['tuned']:.2f} vs {base} {m['base']:.2f} mean en-x F1"
    )


# --- Errors --------------------------------------------------------------------------------------------------


def _rate(flags: pd.Series, ids: pd.Series) -> pd.DataFrame:
    """Per item: its wrong answers and how many are flagged; the rate of the draw is the ratio of their sums."""
    frame = pd.DataFrame({"id": ids.astype(str).to_numpy(), "flagged": flags.astype(float).to_numpy(), "wrong": 1.0})
    return frame.groupby("id").sum()


def _share(means) -> object:
    return 100 * means["flagged"] / means["wrong"]


def error_measures(
    language: pd.DataFrame | None, judge: pd.DataFrame | None, wrong: pd.DataFrame | None, model: str, sample: Sample
) -> list[Measured]:
    """language and generation: shares of the wrong en-x answers (% of W, pooled over languages)."""
    out = []
    if language is not None:
        language = language[(language["model"] == model) & (language["question_lang"] != "en")]
        if len(language):
            out.append(
                measure(
                    "language",
                    _rate(language["language_error"], language["id"]),
                    sample,
                    _share,
                    lambda m: f"{_share(m):.2f}% of {len(language)} wrong en-x answers",
                )
            )
    if judge is not None:
        judge = judge[(judge["model"] == model) & (judge["question_lang"] != "en")]
        if len(judge):
            found = measure(
                "generation",
                _rate(judge["verdict"].isin([1, 2, 3]), judge["id"]),
                sample,
                _share,
                lambda m: f"{_share(m):.2f}% of {len(judge)} wrong en-x answers (judge: {judge['judge'].iloc[0]})",
            )
            out.append(_gated(found, judge, wrong))
    return out


def _gated(found: Measured, judge: pd.DataFrame, wrong: pd.DataFrame | None) -> Measured:
    """The generation finding blocked unless its judge passes the gate: its "blank" agrees with the rule's
    (an empty answer) on at least JUDGE_GATE% of the wrong answers."""
    if wrong is None:
        return replace(found, blocked="no rule-decidable cases to calibrate the judge on (no wrong_answers.parquet)")
    both = judge.merge(wrong[[*KEYS, "rule_blank"]], on=KEYS)
    agreement = 100 * float(((both["verdict"] == 1) == both["rule_blank"].astype(bool)).mean())
    found = replace(found, ours=found.ours + f"; its blank agrees with the rule on {agreement:.1f}%")
    if agreement < JUDGE_GATE:
        gate = f"{agreement:.1f}% < {JUDGE_GATE:g}%"
        return replace(found, blocked=f"the judge fails the calibration gate (blank agreement with the rule {gate})")
    return found


# --- Oracle --------------------------------------------------------------------------------------------------


def oracle_measures(attributions: pd.DataFrame, items: pd.DataFrame, sample: Sample) -> list[Measured]:
    """oracle_chance, oracle_answers (en-x items) and oracle_close (items with en-en and en-x rows)."""
    done = attributions[attributions["status"] == "ok"] if "status" in attributions else attributions
    merged = done.merge(items[[*KEYS, "f1"]], on=KEYS, how="inner")
    merged = merged.assign(
        step=100 * merged["step_correct"].astype(float), chance=100 / merged["n_units"], f1=100 * merged["f1"]
    )
    en_x = merged[merged["question_lang"] != "en"]
    out = []
    if en_x.empty:
        return out
    per_item = en_x.groupby(en_x["id"].astype(str))[["step", "chance", "f1"]].mean()
    out.append(
        measure(
            "oracle_chance",
            per_item[["step", "chance"]],
            sample,
            _diff("step", "chance"),
            lambda m: f"oracle step {m['step']:.2f}% vs chance {m['chance']:.2f}%",
        )
    )
    out.append(
        measure(
            "oracle_answers",
            per_item[["step", "f1"]],
            sample,
            _diff("step", "f1"),
            lambda m: f"oracle step {m['step']:.2f}% vs F1 {m['f1']:.2f}",
        )
    )
    en_en = merged[merged["question_lang"] == "en"].groupby(merged["id"].astype(str))["step"].mean()
    both = pd.DataFrame({"en-x": per_item["step"], "en-en": en_en}).dropna()
    if len(both):
        out.append(
            measure(
                "oracle_close",
                both,
                sample,
                _diff("en-x", "en-en"),
                lambda m: f"step en-x {m['en-x']:.2f}% vs en-en {m['en-en']:.2f}%",
            )
        )
    return out


# --- Layers --------------------------------------------------------------------------------------------------


def phase_measure(relevance: pd.DataFrame, sample: Sample) -> Measured | None:
    """phases: (context − question MRD) / explained layers per prompt, averaged per item over its languages."""
    parts = relevance.pivot_table(
        index=["context_lang", "question_lang", "id"], columns="part", values="mrd", aggfunc="first"
    )
    if not {"question", "context"} <= set(parts.columns):
        return None
    pairs = parts[["question", "context"]].dropna().reset_index()
    if pairs.empty:
        return None
    layers = float(relevance["layers"].max())
    pairs["gap"] = (pairs["context"] - pairs["question"]) / layers
    per_item = pairs.groupby(pairs["id"].astype(str))[["gap", "question", "context"]].mean()
    return measure(
        "phases",
        per_item,
        sample,
        lambda m: m["gap"],
        lambda m: f"MRD question {m['question']:.2f}, context {m['context']:.2f} of {layers:g} layers",
    )


def _item_similarity(similarity: pd.DataFrame, items: pd.DataFrame, part: str, centred: bool) -> pd.DataFrame | None:
    """(items x layers): each item's cos(e_k, x_k) minus the language-wise cosine of its group, language, part
    and layer, averaged over the non-English languages: the item's share of D(en,x), S's numerator minus its
    denominator. D > 0 exactly where S > 1, and unlike the ratio it stays defined (and bounded) where the
    centred language-wise cosine is near 0 or below."""
    suffix = "_centred" if centred else ""
    keys = ["group", "lang", "part", "layer"]
    rows = items[(items["part"] == part) & (items["lang"] != "en")]
    base = similarity[similarity["part"] == part][[*keys, f"language_cos{suffix}"]]
    rows = rows.merge(base, on=keys, how="inner")
    if rows.empty:
        return None
    rows = rows.assign(d=rows[f"cos{suffix}"] - rows[f"language_cos{suffix}"])
    return rows.pivot_table(index=rows["id"].astype(str), columns="layer", values="d", aggfunc="mean")


def similarity_measures(
    similarity: pd.DataFrame, items: pd.DataFrame, sample: Sample, centred: bool = True
) -> list[Measured]:
    """question_arc and last_decline on D(en,x) per item (centred hidden states by default)."""
    out = []
    question = _item_similarity(similarity, items, "question", centred)
    if question is not None:
        layers = question.columns.to_numpy()
        depth = layers / layers.max()
        window = question.loc[:, (depth >= ARC_WINDOW[0]) & (depth <= ARC_WINDOW[1])].mean(axis=1)
        frame = pd.DataFrame(
            {"window": window, "first": question[layers.min()], "last": question[layers.max()]}
        ).dropna()

        def arc(m):
            return np.minimum(m["window"] - m["first"], m["window"] - m["last"])

        out.append(
            measure(
                "question_arc",
                frame,
                sample,
                arc,
                lambda m: f"D window {m['window']:.3f}, embeddings {m['first']:.3f}, last layer {m['last']:.3f}",
            )
        )
    last = _item_similarity(similarity, items, "last", centred)
    if last is not None:
        layers = last.columns.to_numpy()
        start = layers[np.argmin(np.abs(layers / layers.max() - DECLINE_FROM))]
        frame = pd.DataFrame({"from": last[start], "last": last[layers.max()]}).dropna()
        out.append(
            measure(
                "last_decline",
                frame,
                sample,
                _diff("from", "last"),
                lambda m: f"D layer {start} {m['from']:.3f}, last layer {layers.max()} {m['last']:.3f}",
            )
        )
    return out
