"""Base vs tuned: each finetuned model against the model it was trained from, on the same items.

A question-translation model is evaluated on the held-out articles only, so its base is restricted to the
items the tuned model was scored on (per pair, the ids both have). Each model is shown with its better
prompt format on those items, as in the main tables.

Files (per shots setting, CSV and Markdown, F1 in percent):
  comparison_{shots}shot                  one row per model of each pair: pair, role (base|tuned), n_items,
                                          en-en, mean en-x, mean x-x, both ratios, prompt_format
  comparison_f1_{shots}shot_{scenario}    per language (paper Table 10 layout): the base row, the tuned row
                                          and a "Δ <tuned>" row (tuned - base), per pair
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from xmrc import tables
from xmrc.config import Registry
from xmrc.exceptions import XmrcError
from xmrc.finetune import finetuned_model
from xmrc.io import read_table, require_columns


def restrict_to_shared_items(items: pd.DataFrame, base: str, tuned: str) -> pd.DataFrame:
    """The item scores of both models on the ids the tuned model was scored on (and the base has)."""
    require_columns(items, tables.ITEM_COLUMNS, "item scores")
    present = set(items["model"])
    for name in (base, tuned):
        if name not in present:
            raise XmrcError(f"item scores have no rows for model {name!r} (is it in the config's models?)")
    shared = set(items.loc[items["model"] == tuned, "id"]) & set(items.loc[items["model"] == base, "id"])
    if not shared:
        raise XmrcError(f"models {base!r} and {tuned!r} share no scored item")
    pair = items[items["model"].isin([base, tuned]) & items["id"].isin(shared)]
    order = {base: 0, tuned: 1}
    return pair.sort_values("model", key=lambda s: s.map(order), kind="stable")


def pair_tables(
    items: pd.DataFrame,
    base: str,
    tuned: str,
    shots: int,
    criterion: str = tables.DEFAULT_FORMAT_CRITERION,
    choice: str = tables.DEFAULT_FORMAT_CHOICE,
) -> dict[str, pd.DataFrame]:
    """The summary row of each model and the per-language F1 tables of one pair and shots setting."""
    # shared items per shots setting: the item set differs between settings (0-shot also scores the
    # 2-shot demonstration items)
    at_shots = items[items["shots"] == shots]
    for name in (base, tuned):
        if name in set(items["model"]) and name not in set(at_shots["model"]):
            raise XmrcError(f"item scores have no {shots}-shot rows for model {name!r}")
    scores = tables.direction_scores(restrict_to_shared_items(at_shots, base, tuned))
    if choice == "per_model":
        # the format the run's tables show each model in, chosen on all its shots settings
        every = tables.direction_scores(items[items["model"].isin([base, tuned])])
        chosen = tables.chosen_rows(every, shots, criterion, choice)
        scores = scores.merge(chosen[["model", "prompt_format"]].drop_duplicates(), on=["model", "prompt_format"])
    summary = tables.summary_table(scores, shots, criterion)
    if choice == "per_model":
        settings = items.groupby("model")["shots"].unique()
        summary["format_criterion"] = [
            tables.criterion_text(criterion, choice, settings.get(m, ())) for m in summary.index
        ]
    n_items = scores.groupby("model")["n"].max()
    summary.insert(0, "n_items", n_items.reindex(summary.index).astype(int))
    summary.insert(0, "role", ["base" if m == base else "tuned" for m in summary.index])
    summary.insert(0, "pair", tuned)
    out = {"summary": summary}
    for scenario in tables.SCENARIOS:
        wide = tables.language_table(scores, scenario, "f1", shots, criterion=criterion)
        if wide.shape[1] and {base, tuned} <= set(wide.index):
            delta = (wide.loc[tuned] - wide.loc[base]).rename(f"\u0394 {tuned}")
            out[scenario] = pd.concat([wide, delta.to_frame().T])
            out[scenario].index.name = "model"
    return out


def comparison_pairs(
    items: pd.DataFrame, heldout: pd.DataFrame, registry: Registry, tuned: list[str]
) -> list[tuple[str, str, pd.DataFrame]]:
    """(base name, tuned name, their item scores) of each tuned model's key: the run's items of both, except for a
    question-translation model, whose base was scored on the held-out articles (`heldout`) by the finetune
    stage's own rules."""
    pairs = []
    for key in tuned:
        model = finetuned_model(registry, key)
        base = registry.get(model.finetune["base"]).name
        if model.finetune["dataset"] == "question_translation":
            if base not in set(heldout["model"]):
                raise XmrcError(f"no held-out scores of {base!r} for {model.name!r} (--heldout-scores)")
            pair_items = pd.concat([items[items["model"] == model.name], heldout[heldout["model"] == base]])
        else:
            pair_items = items[items["model"].isin([base, model.name])]
        pairs.append((base, model.name, pair_items))
    return pairs


def write_comparison(
    pairs: list[tuple[str, str, pd.DataFrame]],
    shots_settings: list[int],
    out_dir: str | Path,
    criterion: str = tables.DEFAULT_FORMAT_CRITERION,
    choice: str = tables.DEFAULT_FORMAT_CHOICE,
) -> list[Path]:
    """Tables of every (base name, tuned name, their item scores) pair, one file set per shots setting, each
    model in its format chosen by `criterion` and `choice`."""
    out_dir = Path(out_dir)
    paths: list[Path] = []
    for shots in shots_settings:
        parts: dict[str, list[pd.DataFrame]] = {}
        for base, tuned, items in pairs:
            for key, frame in pair_tables(items, base, tuned, shots, criterion, choice).items():
                parts.setdefault(key, []).append(frame)
        summary = pd.concat(parts.pop("summary"))
        summary.index.name = "model"
        paths += tables.write_table(summary, out_dir / f"comparison_{shots}shot")
        for scenario in tables.SCENARIOS:
            frame = (
                pd.concat(parts[scenario]) if parts.get(scenario) else pd.DataFrame(index=pd.Index([], name="model"))
            )
            paths += tables.write_table(frame, out_dir / f"comparison_f1_{shots}shot_{scenario}")
    return paths


def comparison_figure(per_language: dict[str, pd.DataFrame], path: str | Path) -> Path:
    """Grouped bars of F1 per direction, base vs tuned, one panel per scenario (and per pair, as rows)."""
    import seaborn as sns

    from xmrc.plots import new_figure, save_figure  # matplotlib

    long = []
    for scenario, frame in per_language.items():
        if frame.empty:
            continue
        frame = frame[~frame.index.astype(str).str.startswith("\u0394")]
        # Consecutive rows (base, tuned) form one pair.
        for number in range(0, len(frame), 2):
            pair = frame.iloc[number : number + 2]
            tuned = pair.index[-1]
            melted = pair.reset_index().melt(id_vars="model", var_name="direction", value_name="F1")
            long.append(melted.assign(scenario=scenario, pair=tuned))
    if not long:
        raise XmrcError("no comparison rows to plot")
    data = pd.concat(long, ignore_index=True)
    pairs = list(pd.unique(data["pair"]))
    scenarios = list(pd.unique(data["scenario"]))
    fig = new_figure(figsize=(6.5 * len(scenarios), 3.2 * len(pairs)))
    axes = fig.subplots(len(pairs), len(scenarios), squeeze=False)
    for row, pair in enumerate(pairs):
        for col, scenario in enumerate(scenarios):
            ax = axes[row][col]
            subset = data[(data["pair"] == pair) & (data["scenario"] == scenario)]
            sns.barplot(subset, x="direction", y="F1", hue="model", ax=ax)
            ax.set_title(f"{scenario}: {pair} vs base")
            ax.set_ylim(0, 100)
            ax.tick_params(axis="x", rotation=60)
            ax.legend(fontsize=7, loc="upper right")
    fig.tight_layout()
    return save_figure(fig, path, dpi=120, bbox_inches=None)


def read_per_language(table_dir: str | Path, shots: int) -> dict[str, pd.DataFrame]:
    frames = {}
    for scenario in tables.SCENARIOS:
        path = Path(table_dir) / f"comparison_f1_{shots}shot_{scenario}.csv"
        frames[scenario] = read_table(path, required=["model"]).set_index("model")
    return frames
