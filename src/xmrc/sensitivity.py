"""Protocol sensitivity: what each reading of the paper's protocol does to the results (config/protocol.yaml).

A study is a baseline run (the paper's literal protocol) and one run per *arm*, each the baseline with one
switch flipped (`protocol_study.arms`: name -> config overrides). Every run is an ordinary run of the workflow
under `results/<run>-<arm>/` (`snakemake --config protocol_study='{"arm": "<arm>"}'`; `make protocol` runs
them all). This module compares each arm with the baseline on the same items:

  metric                     per item id (pooled over the directions it names)
  F1 en-en, F1 mean en-x, F1 mean x-x, EM mean en-x   item scores of each model's reported (chosen) format
  language error %, generation failure %              the typed wrong answers of the errors stage (en-x, x != en)
  oracle step en-x %, oracle sequence en-x %          the oracle's decided items (protocol.oracle_items)
  MRD context, MRD question                           the relevance stage's part MRDs

and gives the paired difference (arm - baseline) with a percentile bootstrap interval: item ids are resampled
with replacement, the same draws for both runs, and each statistic is a ratio of per-id sums (a mean over the
directions' items, or a share of the wrong answers), so directions and the unequal sizes of W are weighted as in
the tables. Output columns (protocol_sensitivity.csv):

  switch, change ("key: literal -> alternative"), model, metric, baseline, arm, difference, low, high,
  excludes_zero (the interval excludes 0), n (item ids in both runs)
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from xmrc.bootstrap import BootstrapSettings, resampled_means
from xmrc.exceptions import XmrcError

BASELINE = "baseline"
DIRECTION = ["context_lang", "question_lang"]
COLUMNS = [
    "switch",
    "change",
    "model",
    "metric",
    "baseline",
    "arm",
    "difference",
    "low",
    "high",
    "excludes_zero",
    "n",
]


# --- Arms ---------------------------------------------------------------------------------------------------


def merged(base: Mapping, overrides: Mapping) -> dict:
    """`base` with `overrides` merged in, mappings key by key (a list or a value replaces)."""
    out = copy.deepcopy(dict(base))
    for key, value in overrides.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = merged(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def arm_names(config: Mapping) -> list[str]:
    study = config.get("protocol_study") or {}
    return [BASELINE, *study.get("arms", {})]


def apply_arm(config: dict) -> dict:
    """The config of the run `protocol_study.arm` names: the baseline's overrides, then `every_arm`'s and the arm's
    (for an arm), and the run renamed <run>-<arm>. A config without an arm is returned as it is."""
    study = config.get("protocol_study") or {}
    arm = study.get("arm")
    if not arm:
        return config
    arms = study.get("arms", {})
    if arm != BASELINE and arm not in arms:
        raise XmrcError(f"protocol_study.arm: unknown arm {arm!r} (expected one of {', '.join([BASELINE, *arms])})")
    out = merged(config, study.get("baseline", {}))
    if arm != BASELINE:
        out = merged(merged(out, study.get("every_arm", {})), arms[arm])
    out["run"] = f"{config['run']}-{arm}"
    return out


def arm_run(config: Mapping, arm: str) -> str:
    return f"{config['run']}-{arm}"


def _leaves(overrides: Mapping, prefix: str = "") -> list[tuple[str, object]]:
    leaves = []
    for key, value in overrides.items():
        path = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            leaves += _leaves(value, path + ".")
        else:
            leaves.append((path, value))
    return leaves


def _lookup(config: Mapping, path: str):
    value = config
    for key in path.split("."):
        value = value.get(key) if isinstance(value, Mapping) else None
    return value


def describe_change(baseline: Mapping, overrides: Mapping) -> str:
    """ "protocol.layout: paper -> compact" for each value the arm sets (the baseline's value first)."""

    def show(value) -> str:
        return value if isinstance(value, str) else json.dumps(value)

    return "; ".join(
        f"{path}: {show(_lookup(baseline, path))} -> {show(value)}"
        for path, value in _leaves(overrides)
        if _lookup(baseline, path) != value
    )


# --- Per-item values of one run ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Values:
    """Per (model, item id): the numerator and denominator of a statistic over that id's rows."""

    frame: pd.DataFrame  # model, id, num, den

    @classmethod
    def of(cls, rows: pd.DataFrame, value: str, weight: str | None = None) -> Values:
        rows = rows.assign(_num=rows[value].astype(float), _den=1.0 if weight is None else rows[weight].astype(float))
        grouped = rows.groupby(["model", "id"], sort=True)[["_num", "_den"]].sum().reset_index()
        return cls(grouped.rename(columns={"_num": "num", "_den": "den"}))


def _read(path: Path) -> pd.DataFrame | None:
    if not path.is_file():
        return None
    return pd.read_csv(path) if path.suffix == ".csv" else pd.read_parquet(path)


def reported_items(run_dir: Path, shots: int = 2) -> pd.DataFrame | None:
    """Item scores of each model's reported prompt format at `shots` (summary_<shots>shot.csv's choice)."""
    items, summary = _read(run_dir / "tables/item_scores.parquet"), _read(run_dir / f"tables/summary_{shots}shot.csv")
    if items is None or summary is None:
        return None
    chosen = summary[["model", "prompt_format"]].drop_duplicates("model")
    return items[items["shots"] == shots].merge(chosen, on=["model", "prompt_format"])


def _en_x(rows: pd.DataFrame) -> pd.DataFrame:
    return rows[(rows["context_lang"] == "en") & (rows["question_lang"] != "en")]


def _x_x(rows: pd.DataFrame) -> pd.DataFrame:
    return rows[(rows["context_lang"] == rows["question_lang"]) & (rows["context_lang"] != "en")]


def _en_en(rows: pd.DataFrame) -> pd.DataFrame:
    return rows[(rows["context_lang"] == "en") & (rows["question_lang"] == "en")]


def score_metrics(run_dir: Path) -> dict[str, Values]:
    items = reported_items(run_dir)
    if items is None:
        return {}
    items = items.assign(f1=items["f1"] * 100, em=items["em"] * 100)
    return {
        "F1 en-en": Values.of(_en_en(items), "f1"),
        "F1 mean en-x": Values.of(_en_x(items), "f1"),
        "F1 mean x-x": Values.of(_x_x(items), "f1"),
        "EM mean en-x": Values.of(_en_x(items), "em"),
    }


def error_metrics(run_dir: Path, shots: int = 2) -> dict[str, Values]:
    typed = _read(run_dir / f"errors/{shots}shot_en-x/typed_answers.parquet")
    if typed is None:
        return {}
    wrong = _en_x(typed)
    failure = wrong["verdict"].isin([1, 2, 3])  # blank, gibberish, refusal (xmrc.errors.rates.JUDGE_KINDS)
    wrong = wrong.assign(language=wrong["language_error"].astype(float) * 100, failure=failure.astype(float) * 100)
    return {"language error %": Values.of(wrong, "language"), "generation failure %": Values.of(wrong, "failure")}


def oracle_metrics(run_dir: Path, items: str) -> dict[str, Values]:
    from xmrc.analysis.oracle.tables import common_items

    paths = sorted((run_dir / "oracle").glob("*/attributions.parquet"))
    if not paths:
        return {}
    results = pd.concat([pd.read_parquet(path) for path in paths], ignore_index=True)
    ok = results["status"] == "ok"
    if items == "common":
        ok &= common_items(results)
    decided = _en_x(results[ok])
    return {
        "oracle step en-x %": Values.of(decided.assign(v=decided["step_correct"] * 100.0), "v"),
        "oracle sequence en-x %": Values.of(decided.assign(v=decided["sequence_correct"] * 100.0), "v"),
    }


def mrd_metrics(run_dir: Path) -> dict[str, Values]:
    paths = [p for p in sorted((run_dir / "layers/relevance").glob("*/*.parquet")) if ".tokens." not in p.name]
    if not paths:
        return {}
    parts = pd.concat([pd.read_parquet(path) for path in paths], ignore_index=True).dropna(subset=["mrd"])
    # pair rows of the same direction: an id's value pools its directions
    return {f"MRD {part}": Values.of(parts[parts["part"] == part], "mrd") for part in ("context", "question")}


def run_metrics(run_dir: Path, oracle_items: str) -> dict[str, Values]:
    return {
        **score_metrics(run_dir),
        **error_metrics(run_dir),
        **oracle_metrics(run_dir, oracle_items),
        **mrd_metrics(run_dir),
    }


# --- Paired differences ------------------------------------------------------------------------------------


def paired_difference(base: pd.DataFrame, arm: pd.DataFrame, settings: BootstrapSettings) -> dict | None:
    """Baseline and arm statistics (sum num / sum den over the ids both have) and the bootstrap interval of
    their difference; None when no id has a denominator in both."""
    both = base.merge(arm, on="id", suffixes=("_b", "_a"))
    both = both[(both["den_b"] > 0) | (both["den_a"] > 0)]
    if both.empty or both["den_b"].sum() == 0 or both["den_a"].sum() == 0:
        return None
    matrix = both[["num_b", "den_b", "num_a", "den_a"]].to_numpy(dtype=np.float64).T
    means = resampled_means(matrix, settings)
    with np.errstate(divide="ignore", invalid="ignore"):
        differences = means[2] / means[3] - means[0] / means[1]
    low, high = np.nanquantile(differences, settings.quantiles)
    base_value = both["num_b"].sum() / both["den_b"].sum()
    arm_value = both["num_a"].sum() / both["den_a"].sum()
    return dict(
        baseline=base_value,
        arm=arm_value,
        difference=arm_value - base_value,
        low=low,
        high=high,
        excludes_zero=bool(low > 0 or high < 0),
        n=len(both),
    )


def sensitivity_table(
    results: Path,
    config: Mapping,
    settings: BootstrapSettings | None = None,
    read_metrics: Callable[[Path, str], dict[str, Values]] = run_metrics,
) -> pd.DataFrame:
    """One row per (arm, model, metric) both runs have; arms whose run is missing are left out."""
    settings = settings or BootstrapSettings()
    study = config.get("protocol_study") or {}
    baseline_config = merged(config, study.get("baseline", {}))
    base_dir = Path(results) / arm_run(config, BASELINE)
    if not base_dir.is_dir():
        raise XmrcError(f"{base_dir}: the baseline run is missing (make protocol runs every arm)")
    base_items = baseline_config.get("protocol", {}).get("oracle_items", "common")
    base = read_metrics(base_dir, base_items)
    rows = []
    for arm, overrides in study.get("arms", {}).items():
        arm_dir = Path(results) / arm_run(config, arm)
        if not arm_dir.is_dir():
            continue
        arm_config = merged(merged(baseline_config, study.get("every_arm", {})), overrides)
        found = read_metrics(arm_dir, arm_config.get("protocol", {}).get("oracle_items", "common"))
        change = describe_change(baseline_config, overrides)
        for metric, values in found.items():
            if metric not in base:
                continue
            for model, arm_rows in values.frame.groupby("model", sort=False):
                base_rows = base[metric].frame[base[metric].frame["model"] == model]
                result = paired_difference(base_rows.drop(columns="model"), arm_rows.drop(columns="model"), settings)
                if result is not None:
                    rows.append(dict(switch=arm, change=change, model=model, metric=metric, **result))
    return pd.DataFrame(rows, columns=COLUMNS)


def markdown_table(table: pd.DataFrame) -> pd.DataFrame:
    """Switch x metric cells "difference [low, high]" (a * where the interval excludes 0), one block per model."""

    def cell(row) -> str:
        mark = "*" if row["excludes_zero"] else ""
        return f"{row['difference']:+.2f} [{row['low']:+.2f}, {row['high']:+.2f}]{mark} (n={row['n']})"

    shown = table.assign(cell=table.apply(cell, axis=1) if len(table) else [])
    wide = shown.pivot_table(index=["model", "switch", "change"], columns="metric", values="cell", aggfunc="first")
    order = [m for m in pd.unique(table["metric"]) if m in wide.columns]
    return wide[order].reset_index().fillna("")


def largest_effects(table: pd.DataFrame, metrics: tuple[str, ...], count: int = 3) -> pd.DataFrame:
    """The switches that move F1 most: by the largest |difference| over `metrics` and models."""
    f1 = table[table["metric"].isin(metrics)].assign(size=lambda t: t["difference"].abs())
    best = f1.sort_values("size", ascending=False).drop_duplicates("switch")
    return best.head(count)[["switch", "change", "model", "metric", "difference", "low", "high", "excludes_zero"]]
