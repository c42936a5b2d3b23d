"""Protocol sensitivity: what each reading of the paper's protocol does to the results (config/protocol.yaml).

A study is a baseline run (the paper's literal protocol) and one run per *arm*, each the baseline with one
switch flipped (`protocol_study.arms`: name -> config overrides). Every run is an ordinary run of the workflow
under `results/<run>-<arm>/` (`snakemake --config protocol_study='{"arm": "<arm>"}'`; `make protocol` runs
them all). This module compares each arm with the baseline on the same items:

  metric                     per item id (pooled over the directions it names)
  F1 en-en, F1 mean en-x, F1 mean x-x, EM mean en-x   2-shot item scores in the compared format (v1, the one
                                                      every arm runs; each run's reported format for an arm that
                                                      changes the format choice)
  language error %, generation failure %              shares of the wrong answers of the errors stage (en-x,
                                                      x != en), every scored item a unit
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
import os
import re
import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from xmrc.analysis.oracle.tables import common_items
from xmrc.bootstrap import BootstrapSettings, resampled_means
from xmrc.config import Registry
from xmrc.exceptions import XmrcError
from xmrc.io import read_parquet

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
        out = merged(merged(out, arm_scope(study, arm)), arms[arm])
    out["run"] = f"{config['run']}-{arm}"
    return out


def arm_scope(study: Mapping, arm: str) -> Mapping:
    """`every_arm`'s overrides for an arm that generates anew; none for a derived arm (the baseline's scope)."""
    return {} if arm in study.get("derived", []) else study.get("every_arm", {})


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

KEYS = ["model", "context_lang", "question_lang", "id"]


@dataclass(frozen=True)
class Values:
    """Per item (model, direction, id): the numerator and denominator it adds to a statistic. Every item the
    statistic could count is a row (den 0 where it does not count, e.g. a right answer in an error rate), so two
    runs are paired on the items both have and a statistic is sum(num) / sum(den)."""

    frame: pd.DataFrame  # KEYS + num, den

    @classmethod
    def of(cls, rows: pd.DataFrame, num, den=1.0) -> Values:
        frame = rows[KEYS].copy()
        frame["num"] = np.asarray(num, dtype=float)
        frame["den"] = np.asarray(den, dtype=float)
        return cls(frame.reset_index(drop=True))


def _read(path: Path) -> pd.DataFrame | None:
    if not path.is_file():
        return None
    return pd.read_csv(path) if path.suffix == ".csv" else read_parquet(path)


def setting_items(run_dir: Path, prompt_format: str | None, shots: int = 2) -> pd.DataFrame | None:
    """Item scores at `shots` in `prompt_format`, or (None) in each model's reported format
    (summary_<shots>shot.csv's choice)."""
    items = _read(run_dir / "tables/item_scores.parquet")
    if items is None:
        return None
    items = items[items["shots"] == shots]
    if prompt_format is not None:
        return items[items["prompt_format"] == prompt_format]
    summary = _read(run_dir / f"tables/summary_{shots}shot.csv")
    if summary is None:
        return None
    return items.merge(summary[["model", "prompt_format"]].drop_duplicates("model"), on=["model", "prompt_format"])


def _en_x(rows: pd.DataFrame) -> pd.DataFrame:
    return rows[(rows["context_lang"] == "en") & (rows["question_lang"] != "en")]


def _x_x(rows: pd.DataFrame) -> pd.DataFrame:
    return rows[(rows["context_lang"] == rows["question_lang"]) & (rows["context_lang"] != "en")]


def _en_en(rows: pd.DataFrame) -> pd.DataFrame:
    return rows[(rows["context_lang"] == "en") & (rows["question_lang"] == "en")]


def score_metrics(run_dir: Path, prompt_format: str | None) -> dict[str, Values]:
    items = setting_items(run_dir, prompt_format)
    if items is None:
        return {}
    found = {}
    for name, select, column in (
        ("F1 en-en", _en_en, "f1"),
        ("F1 mean en-x", _en_x, "f1"),
        ("F1 mean x-x", _x_x, "f1"),
        ("EM mean en-x", _en_x, "em"),
    ):
        rows = select(items)
        found[name] = Values.of(rows, 100 * rows[column])
    return found


def error_metrics(run_dir: Path, errors: Mapping) -> dict[str, Values]:
    """Shares of the wrong answers (W) of the errors stage's setting, over every en-x item (x != en) it scored."""
    shots = errors.get("shots", 2)
    typed = _read(run_dir / f"errors/{shots}shot_{errors.get('scenario', 'en-x')}/typed_answers.parquet")
    fmt = errors.get("prompt_format", "best")
    items = setting_items(run_dir, None if fmt == "best" else fmt, shots)
    if typed is None or items is None:
        return {}
    items = _en_x(items).merge(typed[KEYS + ["language_error", "verdict"]], on=KEYS, how="left")
    wrong = items["verdict"].notna().to_numpy()
    failure = items["verdict"].isin([1, 2, 3]).to_numpy()  # blank, gibberish, refusal (xmrc.errors.rates)
    language = (items["language_error"] == True).to_numpy()  # noqa: E712 (NaN where right: not an error)
    return {
        "language error %": Values.of(items, 100.0 * (language & wrong), wrong),
        "generation failure %": Values.of(items, 100.0 * (failure & wrong), wrong),
    }


def oracle_metrics(run_dir: Path, item_set: str) -> dict[str, Values]:
    paths = sorted((run_dir / "oracle").glob("*/attributions.parquet"))
    if not paths:
        return {}
    results = pd.concat([read_parquet(path) for path in paths], ignore_index=True)
    decided = results["status"] == "ok"
    if item_set == "common":
        decided &= common_items(results)
    results = results.assign(_decided=decided)
    results = _en_x(results)
    decided = results["_decided"].to_numpy()
    return {
        "oracle step en-x %": Values.of(results, 100.0 * (results["step_correct"].to_numpy() & decided), decided),
        "oracle sequence en-x %": Values.of(
            results, 100.0 * (results["sequence_correct"].to_numpy() & decided), decided
        ),
    }


def mrd_metrics(run_dir: Path, model_names: Mapping[str, str]) -> dict[str, Values]:
    """Part MRDs of the relevance stage, its rows (named by registry key) renamed as the tables name models."""
    paths = [p for p in sorted((run_dir / "layers/relevance").glob("*/*.parquet")) if ".tokens." not in p.name]
    if not paths:
        return {}
    parts = pd.concat([read_parquet(path) for path in paths], ignore_index=True)
    parts["model"] = parts["model"].map(lambda key: model_names.get(key, key))
    found = {}
    for part in ("context", "question"):
        rows = parts[parts["part"] == part]
        found[f"MRD {part}"] = Values.of(rows, rows["mrd"].fillna(0.0), rows["mrd"].notna())
    return found


def run_metrics(run_dir: Path, run_config: Mapping, prompt_format: str | None) -> dict[str, Values]:
    protocol = run_config.get("protocol", {})
    return {
        **score_metrics(run_dir, prompt_format),
        **error_metrics(run_dir, run_config.get("errors", {})),
        **oracle_metrics(run_dir, protocol.get("oracle_items", "common")),
        **mrd_metrics(run_dir, _model_names(run_config)),
    }


def _model_names(run_config: Mapping) -> dict[str, str]:
    if "registry" not in run_config:
        return {}
    registry = Registry.load(run_config["registry"])
    return {key: registry.get(key).name for key in run_config.get("layers", {}).get("models", [])}


# --- Paired differences ------------------------------------------------------------------------------------


def paired_difference(base: pd.DataFrame, arm: pd.DataFrame, settings: BootstrapSettings) -> dict | None:
    """Baseline and arm statistics (sum num / sum den over the items both runs have) and the bootstrap interval
    of their difference, item ids resampled (an id's directions together); None when either has no
    denominator."""
    keys = [key for key in KEYS if key in base.columns and key in arm.columns]
    both = base.merge(arm, on=keys, suffixes=("_b", "_a"))
    per_id = both.groupby("id", sort=True)[["num_b", "den_b", "num_a", "den_a"]].sum()
    per_id = per_id[(per_id["den_b"] > 0) | (per_id["den_a"] > 0)]
    if per_id.empty or per_id["den_b"].sum() == 0 or per_id["den_a"].sum() == 0:
        return None
    means = resampled_means(per_id.to_numpy(dtype=np.float64).T, settings)
    with np.errstate(divide="ignore", invalid="ignore"):
        differences = means[2] / means[3] - means[0] / means[1]
    low, high = np.nanquantile(differences, settings.quantiles)
    base_value = per_id["num_b"].sum() / per_id["den_b"].sum()
    arm_value = per_id["num_a"].sum() / per_id["den_a"].sum()
    return dict(
        baseline=base_value,
        arm=arm_value,
        difference=arm_value - base_value,
        low=low,
        high=high,
        excludes_zero=bool(low > 0 or high < 0),
        n=len(per_id),
    )


MetricsReader = Callable[[Path, Mapping, "str | None"], dict[str, Values]]


def compared_format(study: Mapping, baseline_config: Mapping, arm_config: Mapping) -> str | None:
    """The prompt format both runs are compared in: the one every arm runs (`every_arm.prompt_formats`, else
    v1), or each run's reported format (None) for an arm that changes how the format is chosen."""
    if arm_config.get("tables", {}) != baseline_config.get("tables", {}):
        return None
    return (study.get("every_arm", {}).get("prompt_formats") or ["v1"])[0]


def sensitivity_table(
    results: Path,
    config: Mapping,
    settings: BootstrapSettings | None = None,
    read_metrics: MetricsReader = run_metrics,
) -> pd.DataFrame:
    """One row per (arm, model, metric) both runs have; arms whose run is missing are left out."""
    settings = settings or BootstrapSettings()
    study = config.get("protocol_study") or {}
    baseline_config = merged(config, study.get("baseline", {}))
    base_dir = Path(results) / arm_run(config, BASELINE)
    if not base_dir.is_dir():
        raise XmrcError(f"{base_dir}: the baseline run is missing (make protocol runs every arm)")
    rows = []
    for arm, overrides in study.get("arms", {}).items():
        arm_dir = Path(results) / arm_run(config, arm)
        if not arm_dir.is_dir():
            continue
        arm_config = merged(merged(baseline_config, arm_scope(study, arm)), overrides)
        fmt = compared_format(study, baseline_config, arm_config)
        base, found = read_metrics(base_dir, baseline_config, fmt), read_metrics(arm_dir, arm_config, fmt)
        change = describe_change(baseline_config, overrides)
        for metric, values in found.items():
            if metric not in base:
                continue
            for model, arm_rows in values.frame.groupby("model", sort=False):
                base_rows = base[metric].frame[base[metric].frame["model"] == model]
                result = paired_difference(base_rows, arm_rows, settings)
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


# --- Derived arms: a copy of the baseline, the outputs the switch touches dated back ---------------------------


def override_args(overrides: Mapping) -> list[str]:
    """The arm's overrides as Snakemake `--config` values (a mapping is merged key by key into the config)."""
    return [f"{key}={json.dumps(value)}" for key, value in overrides.items()]


def params_changed_outputs(dry_run: str) -> list[str]:
    """The outputs of the jobs a `snakemake -n` printout re-runs because their params changed."""
    outputs = []
    for block in re.split(r"^(?=(?:local)?rule \w+:)", dry_run, flags=re.M):
        output = re.search(r"^\s+output: (.+)$", block, re.M)
        if output and re.search(r"^\s+reason: .*Params have changed", block, re.M):
            outputs += [path.strip() for path in output.group(1).split(",")]
    return outputs


def seed_from_baseline(base_dir: Path, arm_dir: Path, stale: list[str]) -> int:
    """Copy the baseline run to `arm_dir` (every file given the newest file time of the run, through a
    temporary folder renamed at the end, so a stopped copy is never taken for a finished one) and remove from
    the copy the outputs in `stale` (paths under `base_dir`) by dating them back; returns how many. Snakemake
    then recomputes them and, by file time, what reads them."""
    base_dir, arm_dir = Path(base_dir), Path(arm_dir)
    partial = arm_dir.with_name(arm_dir.name + ".copying")
    shutil.rmtree(partial, ignore_errors=True)
    shutil.copytree(base_dir, partial, copy_function=shutil.copy2, ignore=shutil.ignore_patterns("*.shards"))
    # one file time for the whole copy: no input looks newer than an output of the finished baseline (outputs
    # made within the same second may be ordered either way); the recomputed ones are newer than all of it
    files = [path for path in partial.rglob("*") if path.is_file()]
    stamp = max((path.stat().st_mtime for path in files), default=0.0)
    for path in files:
        os.utime(path, (stamp, stamp))
    # a stale output is dated back to the epoch rather than removed: Snakemake does not recompute a missing file
    # whose readers are up to date, but does recompute an output older than its inputs, and then its readers
    backdated = 0
    for path in stale:
        target = partial / Path(path).relative_to(base_dir)
        if target.exists():
            os.utime(target, (1.0, 1.0))
            backdated += 1
    partial.rename(arm_dir)
    return backdated
