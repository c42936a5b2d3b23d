"""The paper's findings checked on one model's run: every verdict able to come out "holds", "does not hold" or
"cannot tell".

Each finding is declared before the data (`xmrc.paper.claims`: the paper's words, the population the claim is
made for, the statistic θ, the unit of resampling, the claim on θ with its margin), measured on the run's
outputs (`xmrc.paper.measures`: θ and its paragraph-bootstrap draws) and decided together with the others
(`xmrc.paper.verdicts`: Holm's correction over the family the run tests). A finding whose population the model
is not in, or whose outputs the run lacks, is listed as not tested and takes no place in the family; one that
is measured but must not be decided (a judge failing its calibration gate) is "cannot tell", also outside it.
The mutation tests (tests/unit/paper/test_mutations.py) give every finding data where it holds, where it is
reversed and where there is no effect.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from xmrc import tables
from xmrc.bootstrap import BootstrapSettings
from xmrc.exceptions import XmrcError
from xmrc.intervals import chosen_formats, markdown_scenarios, scenario_intervals
from xmrc.io import read_parquet, read_table
from xmrc.paper.claims import FINDINGS, POPULATIONS
from xmrc.paper.clusters import paragraph_of
from xmrc.paper.measures import (
    Measured,
    Sample,
    error_measures,
    finetune_measure,
    oracle_measures,
    phase_measure,
    score_measures,
    similarity_measures,
)
from xmrc.paper.verdicts import UNSURE, decide

NOT_TESTED = "not tested"
COLUMNS = [
    "finding",
    "paper",
    "population",
    "statistic",
    "criterion",
    "unit",
    "paragraphs",
    "items",
    "ours",
    "estimate",
    "low",
    "high",
    "confidence",
    "p_holm",
    "verdict",
    "note",
]
# Findings resample with more draws than the tables' intervals: Holm's smallest level over a dozen findings is
# alpha / 12 ~ 0.004, whose tails need thousands of draws.
FINDINGS_RESAMPLES = 10000


def evaluate(measured: list[Measured], population: str, alpha: float = 0.05, correct: bool = True) -> pd.DataFrame:
    """The findings table of `measured` (COLUMNS, in FINDINGS order): the undecidable ones outside the family,
    the rest decided together (Holm over the family unless correct=False), plus a not-tested row for every
    finding that was not measured."""
    if population not in POPULATIONS:
        raise XmrcError(f"population must be one of {', '.join(POPULATIONS)}, got {population!r}")
    by_key = {m.key: m for m in measured}
    family = [m for m in measured if FINDINGS[m.key].applies_to(population) and m.blocked is None]
    decisions = decide(
        [m.estimate for m in family], [m.draws for m in family], [FINDINGS[m.key].claim for m in family], alpha, correct
    )
    decided = dict(zip((m.key for m in family), decisions))
    rows = []
    for key, finding in FINDINGS.items():
        row = dict(
            finding=finding.name,
            paper=finding.paper,
            population=finding.population,
            statistic=finding.statistic,
            criterion=finding.criterion,
            unit=finding.unit,
        )
        m = by_key.get(key)
        if not finding.applies_to(population):
            row.update(verdict=NOT_TESTED, note=f"the paper makes this claim for {finding.population} models")
        elif m is None:
            row.update(verdict=NOT_TESTED, note="the run has no outputs for it")
        else:
            row.update(paragraphs=m.paragraphs, items=m.items, ours=m.ours, estimate=m.estimate)
            if m.blocked is not None:
                row.update(verdict=UNSURE, note=m.blocked)
            else:
                d = decided[key]
                row.update(low=d.low, high=d.high, confidence=d.confidence, p_holm=d.p_adjusted, verdict=d.verdict)
                note = f"Holm over {len(family)} findings" if correct else "uncorrected"
                row.update(note=note)
        rows.append(row)
    return pd.DataFrame(rows, columns=COLUMNS)


def markdown(found: pd.DataFrame) -> str:
    """The findings table for people: θ with its Holm-level interval, n as paragraphs / items."""
    shown = pd.DataFrame(
        {
            "finding": found["finding"],
            "paper (population)": found["paper"] + " (" + found["population"] + ")",
            "statistic θ; claim": found["statistic"] + "; " + found["criterion"],
            "n (paragraphs / items)": [
                f"{int(p)} / {int(i)}" if pd.notna(p) else "" for p, i in zip(found["paragraphs"], found["items"])
            ],
            "ours": [_ours(row) for row in found.itertuples()],
            "p (Holm)": [f"{p:.4f}" if pd.notna(p) else "" for p in found["p_holm"]],
            "verdict": found["verdict"],
        }
    )
    decided = found["p_holm"].notna().sum()
    preface = (
        f"θ resampled by XQuAD paragraph (all items and languages of a paragraph together, paired across the "
        f"settings compared); intervals at the level Holm's step-down tested each at, over the {decided} findings "
        "decided; a finding on fewer than 10 paragraphs, or whose judge fails its gate, is not decided.\n\n"
    )
    return preface + tables.markdown_table(shown.set_index("finding")) + "\n"


def _ours(row) -> str:
    if pd.isna(row.estimate):
        return row.note if isinstance(row.note, str) else ""
    text = f"{row.ours}; θ = {row.estimate:.3f}"
    if pd.notna(row.low):
        text += f" [{row.low:.3f}, {row.high:.3f}] ({100 * row.confidence:.2f}%)"
    if row.verdict == UNSURE and isinstance(row.note, str) and not row.note.startswith("Holm"):
        text += f" — {row.note}"
    return text


def summary_line(found: pd.DataFrame) -> str:
    counts = found["verdict"].value_counts()
    return ", ".join(f"{counts[v]} {v}" for v in ("holds", "does not hold", UNSURE, NOT_TESTED) if v in counts)


# --- A run's outputs -----------------------------------------------------------------------------------------


def _frames(paths) -> pd.DataFrame | None:
    paths = list(paths)
    return pd.concat([read_parquet(p) for p in paths], ignore_index=True) if paths else None


def _optional(path: Path) -> pd.DataFrame | None:
    return read_parquet(path) if path.is_file() else None


def tuned_of(results: Path, model: str) -> str | None:
    path = results / "tables" / "intervals" / "paired_differences.csv"
    if not path.is_file():
        return None
    pairs = read_table(path)
    tuned = pairs[(pairs["comparison"] == "tuned vs base") & (pairs["model_a"] == model)]["model_b"]
    return str(tuned.iloc[0]) if len(tuned) else None


def _layer_keys(similarity_items: pd.DataFrame | None, model: str) -> set | None:
    """The registry keys of `model` (a display name) in the layer outputs, None when they cannot tell."""
    if similarity_items is None or "model_name" not in similarity_items:
        return None
    return set(similarity_items.loc[similarity_items["model_name"] == model, "model"])


def layer_measures(layers: Path, model: str, sample: Sample) -> list[Measured]:
    """phases from the relevance tables (a setting listed twice, as `best` and by name, counted once),
    question_arc and last_decline from the similarity tables."""
    items_path = layers / "similarity_items.parquet"
    similarity_items = read_parquet(items_path) if items_path.is_file() else None
    keys = _layer_keys(similarity_items, model)
    measured = []
    parts = [p for p in sorted((layers / "relevance").glob("*/*shot-*.parquet")) if p.name.count(".") == 1]
    relevance = _frames(parts)
    if relevance is not None:
        if keys is not None and "model" in relevance:
            relevance = relevance[relevance["model"].isin(keys)]
        key = [
            c
            for c in ("model", "shots", "prompt_format", "context_lang", "question_lang", "id", "part")
            if c in relevance
        ]
        measured.append(phase_measure(relevance.drop_duplicates(key), sample) if len(relevance) else None)
    if similarity_items is not None and (layers / "similarity.csv").is_file():
        similarity = read_table(layers / "similarity.csv")
        similarity_items = similarity_items[similarity_items["model_name"] == model]
        similarity = similarity[similarity["model_name"] == model]
        measured += similarity_measures(similarity, similarity_items, sample)
    return measured


def measure_run(results: str | Path, model: str, settings: BootstrapSettings) -> list[Measured]:
    """Every finding the run's outputs allow for `model` (the display name of the tables)."""
    results = Path(results)
    items = read_parquet(results / "tables" / "item_scores.parquet")
    sample = Sample(paragraph_of(items["id"]), settings)
    chosen = chosen_formats(tables.direction_scores(items))
    measured = score_measures(items, chosen, model, sample)
    tuned = tuned_of(results, model)
    if tuned:
        measured.append(finetune_measure(items, chosen, model, tuned, sample))
    errors = results / "errors" / "2shot_en-x"
    measured += error_measures(
        _optional(errors / "language.parquet"),
        _optional(errors / "judge.parquet"),
        _optional(errors / "wrong_answers.parquet"),
        model,
        sample,
    )
    oracle = _frames(sorted((results / "oracle").glob("*/attributions.parquet")))
    if oracle is not None:
        measured += oracle_measures(oracle, items, sample)
    measured += layer_measures(results / "layers", model, sample)
    return [m for m in measured if m is not None]


def check_findings(
    results: str | Path,
    model: str,
    population: str = "base",
    settings: BootstrapSettings | None = None,
    alpha: float = 0.05,
) -> pd.DataFrame:
    """The findings table of a run (`evaluate` of `measure_run`)."""
    settings = settings or BootstrapSettings(resamples=FINDINGS_RESAMPLES)
    return evaluate(measure_run(results, model, settings), population, alpha)


def scenario_table(items: pd.DataFrame, chosen: dict, settings: BootstrapSettings) -> pd.DataFrame:
    """Table 2's columns with intervals, per model and shots setting (the chosen format)."""
    return markdown_scenarios(scenario_intervals(items, chosen, settings))


def run_scenarios(results: str | Path, settings: BootstrapSettings | None = None) -> pd.DataFrame:
    """`scenario_table` of a run's item scores, each model in its chosen format."""
    items = read_parquet(Path(results) / "tables" / "item_scores.parquet")
    return scenario_table(items, chosen_formats(tables.direction_scores(items)), settings or BootstrapSettings())
