"""Oracle tables from attribution results: the paper's Table 3, per-language tables, oracle vs actual F1.

Pure pandas. Accuracies are percentages of the items with an oracle decision (status ok); items without one
(empty answer, answer not located, target not aligned) are counted in `skipped`. Under protocol.oracle_items
"common" (the default) an item counts only where every model has a decision on it, so all models are measured
on one item set, as the paper's Table 3 is (its ten en-en values are all multiples of 1/1184); under
"per_model" each model is measured on its own decided items.

Files written by `write_oracle_tables` (each .csv and .md, except oracle_vs_f1 which is .csv only):
  oracle_summary                  Table 3: model, step en-en, step en-x, sequence en-en, sequence en-x
                                  (en-x = mean over the non-English question languages present)
  oracle_step_en-x, oracle_sequence_en-x   model x direction accuracy
  oracle_vs_f1.csv                model, prompt_format, direction, context_lang, question_lang, n, skipped,
                                  merged, step, sequence, f1 (F1 of the model's answers on the same items)
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from xmrc import LANGUAGES
from xmrc.exceptions import XmrcError, check_choice
from xmrc.io import require_columns, write_csv
from xmrc.tables import write_table

KINDS = ("step", "sequence")
SUMMARY_COLUMNS = ["step en-en", "step en-x", "sequence en-en", "sequence en-x"]
RESULT_KEYS = ["model", "shots", "prompt_format", "context_lang", "question_lang", "id"]
ITEM_SETS = ("common", "per_model")


def _direction_order(frame: pd.DataFrame) -> pd.Series:
    rank = {lang: i for i, lang in enumerate(LANGUAGES)}
    return frame["question_lang"].map(lambda lang: rank.get(lang, len(rank)))


def common_items(results: pd.DataFrame) -> pd.Series:
    """Per row: whether every model of `results` has an oracle decision on this (direction, item)."""
    item = ["context_lang", "question_lang", "id"]
    decided = results.assign(ok=results["status"] == "ok").groupby(item)["ok"].agg(["all", "size"])
    everywhere = decided["all"] & (decided["size"] == results["model"].nunique())
    return results.join(everywhere.rename("_common"), on=item)["_common"].fillna(False).astype(bool)


def direction_accuracy(
    results: pd.DataFrame, item_scores: pd.DataFrame | None = None, items: str = "per_model"
) -> pd.DataFrame:
    """Per model and direction: items, skipped, merged gold units, step and sequence accuracy (percent),
    and the mean F1 (percent) of the model's answers on the same attributed items when scores are given.
    `items` "common": only items every model has a decision on count (the others are skipped)."""
    require_columns(results, RESULT_KEYS + ["status", "merged", "step_correct", "sequence_correct"], "oracle results")
    check_choice("protocol.oracle_items", items, ITEM_SETS)
    ok = results["status"] == "ok"
    if items == "common":
        ok &= common_items(results)
    frame = results.assign(
        ok=ok,
        step=results["step_correct"] & ok,
        sequence=results["sequence_correct"] & ok,
        merged=results["merged"] & ok,
    )
    keys = ["model", "shots", "prompt_format", "context_lang", "question_lang"]
    grouped = frame.groupby(keys, sort=False)
    out = grouped.agg(
        n=("ok", "sum"),
        items=("id", "size"),
        merged=("merged", "sum"),
        step=("step", "sum"),
        sequence=("sequence", "sum"),
    ).reset_index()
    out["skipped"] = out["items"] - out["n"]
    denominator = out["n"].where(out["n"] > 0)
    out["step"] = 100.0 * out["step"] / denominator
    out["sequence"] = 100.0 * out["sequence"] / denominator
    columns = keys + ["n", "skipped", "merged", "step", "sequence"]
    if item_scores is not None:
        require_columns(item_scores, RESULT_KEYS + ["f1"], "item scores")
        scored = frame[frame["ok"]].merge(item_scores[RESULT_KEYS + ["f1"]], on=RESULT_KEYS, how="left")
        f1 = scored.groupby(keys, sort=False)["f1"].mean().mul(100.0).rename("f1").reset_index()
        out = out.merge(f1, on=keys, how="left")
        columns.append("f1")
    out.insert(2, "direction", out["context_lang"] + "-" + out["question_lang"])
    out = out.assign(_d=_direction_order(out)).sort_values(["_d"], kind="stable")
    order = {m: i for i, m in enumerate(pd.unique(results["model"]))}
    out = out.assign(_m=out["model"].map(order)).sort_values(["_m", "_d"], kind="stable")
    return out[columns[:2] + ["direction"] + columns[2:]].reset_index(drop=True)


def language_table(accuracy: pd.DataFrame, kind: str) -> pd.DataFrame:
    """model x direction (en-en first, paper order) of step or sequence accuracy."""
    if kind not in KINDS:
        raise XmrcError(f"unknown oracle kind '{kind}' (expected one of {', '.join(KINDS)})")
    wide = accuracy.pivot(index="model", columns="direction", values=kind)
    wide = wide.reindex(pd.unique(accuracy["model"]))
    directions = [f"en-{lang}" for lang in LANGUAGES if f"en-{lang}" in wide.columns]
    wide = wide[directions]
    wide.index.name, wide.columns.name = "model", None
    return wide


def summary_table(accuracy: pd.DataFrame) -> pd.DataFrame:
    """Table 3: en-en and mean en-x (non-English question languages) step and sequence accuracy."""
    out = pd.DataFrame(index=pd.Index(pd.unique(accuracy["model"]), name="model"))
    for kind in KINDS:
        wide = language_table(accuracy, kind)
        others = [c for c in wide.columns if c != "en-en"]
        out[f"{kind} en-en"] = wide["en-en"] if "en-en" in wide.columns else float("nan")
        out[f"{kind} en-x"] = wide[others].mean(axis=1) if others else float("nan")
    return out[SUMMARY_COLUMNS]


def write_oracle_tables(
    results: pd.DataFrame, item_scores: pd.DataFrame | None, out_dir: str | Path, items: str = "common"
) -> list[Path]:
    out_dir = Path(out_dir)
    accuracy = direction_accuracy(results, item_scores, items)
    paths = write_table(summary_table(accuracy), out_dir / "oracle_summary")
    for kind in KINDS:
        paths += write_table(language_table(accuracy, kind), out_dir / f"oracle_{kind}_en-x")
    return paths + [write_csv(accuracy, out_dir / "oracle_vs_f1.csv", float_format="%.2f")]
