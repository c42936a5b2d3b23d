import numpy as np
import pandas as pd
import pytest

pytest.importorskip("seaborn")

import matplotlib.axes

from xmrc.cli import main
from xmrc.exceptions import XmrcError
from xmrc.figures import direction_matrix, f1_matrix, heatmap, mean_errors, means_chart
from xmrc.tables import DIRECTION_COLUMNS, PAPER_DIRECTIONS, summary_table, table_scenarios

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def synthetic_scores(models, shots=(0, 2), formats=("v1", "v2"), seed=0):
    rng = np.random.default_rng(seed)
    rows = [
        dict(
            model=m,
            shots=s,
            prompt_format=f,
            context_lang=c,
            question_lang=q,
            n=1188,
            em=rng.uniform(0, 80),
            f1=rng.uniform(20, 100),
        )
        for m in models
        for s in shots
        for f in formats
        for c, q in PAPER_DIRECTIONS
    ]
    return pd.DataFrame(rows, columns=list(DIRECTION_COLUMNS))


def assert_png(path, min_bytes=5_000):
    assert path.exists()
    assert path.read_bytes()[:8] == PNG_MAGIC
    assert path.stat().st_size > min_bytes


def run_figures(direction_scores, out_dir):
    """What the workflow's report rules draw with `xmrc figures`: per shots setting, a heatmap of each scenario
    the run's directions have and the means chart; returns the paths."""
    scores_csv = out_dir / "direction_scores.csv"
    direction_scores.to_csv(scores_csv, index=False)
    scenarios = table_scenarios(zip(direction_scores["context_lang"], direction_scores["question_lang"]))
    paths = []
    for shots in sorted(direction_scores["shots"].unique()):
        figures = [
            (["--kind", "heatmap", "--scenario", scenario], f"heatmap_f1_{shots}shot_{scenario}.png")
            for scenario in scenarios
        ] + [(["--kind", "means"], f"means_{shots}shot.png")]
        for options, name in figures:
            paths.append(out_dir / name)
            code = main(
                [
                    "figures",
                    "--direction-scores",
                    str(scores_csv),
                    "--shots",
                    str(shots),
                    *options,
                    "--out",
                    str(paths[-1]),
                ]
            )
            if code:
                return code
    return paths


def test_run_figures_full_run(tmp_path):
    models = [f"Model-Name-{i}-Instruct-8B" for i in range(18)]
    paths = run_figures(synthetic_scores(models), tmp_path)
    assert sorted(p.name for p in paths) == sorted(
        name
        for s in (0, 2)
        for name in (f"heatmap_f1_{s}shot_en-x.png", f"heatmap_f1_{s}shot_x-x.png", f"means_{s}shot.png")
    )
    for path in paths:
        assert_png(path, 20_000)


def test_single_model_single_format(tmp_path):
    paths = run_figures(synthetic_scores(["Only"], shots=(2,), formats=("v1",)), tmp_path)
    assert [p.name for p in paths] == ["heatmap_f1_2shot_en-x.png", "heatmap_f1_2shot_x-x.png", "means_2shot.png"]
    for path in paths:
        assert_png(path)


def test_nan_cells_and_missing_directions(tmp_path):
    ds = synthetic_scores(["A", "B"], shots=(0,))
    ds.loc[ds.index[:5], ["em", "f1"]] = np.nan
    ds = ds[~((ds["model"] == "B") & (ds["context_lang"] != "en"))]  # B has no x-x at all
    assert_png(heatmap(ds, "en-x", 0, tmp_path / "h.png"))
    assert_png(heatmap(ds, "x-x", 0, tmp_path / "hx.png"))
    assert_png(means_chart(ds, 0, tmp_path / "m.png"))


def test_missing_column_is_reported(tmp_path, capsys):
    assert run_figures(synthetic_scores(["A"]).drop(columns=["prompt_format"]), tmp_path) == 2
    assert "prompt_format" in capsys.readouterr().err


def test_context_question_matrix_of_one_model_and_setting(tmp_path):
    languages = ["en", "zh", "de"]
    rows = [
        dict(
            model=m,
            shots=5,
            prompt_format="v2",
            context_lang=c,
            question_lang=q,
            n=3,
            em=0.0,
            f1=10.0 * languages.index(c) + languages.index(q) + (50 if m == "Other" else 0),
        )
        for m in ("M", "Other")
        for c in languages
        for q in languages
        if (c, q) != ("zh", "de")
    ]
    scores = pd.DataFrame(rows, columns=list(DIRECTION_COLUMNS))
    matrix = f1_matrix(scores, "M", 5, "v2")
    assert list(matrix.index) == list(matrix.columns) == ["en", "de", "zh"]  # XQuAD order
    assert matrix.loc["de", "zh"] == 21.0 and matrix.loc["zh", "en"] == 10.0  # row: context, column: question
    assert np.isnan(matrix.loc["zh", "de"])  # a pair without scores stays blank
    assert_png(direction_matrix(scores, "M", 5, "v2", tmp_path / "matrix.png"))
    with pytest.raises(XmrcError, match="no rows for model 'M', 2-shot v2"):
        f1_matrix(scores, "M", 2, "v2")


def scenario_rows(summary, shots, width=5.0, formats=None):
    """scenario_intervals.csv rows for the summary's models: each mean +- width (percent)."""
    rows = []
    for model, row in summary.iterrows():
        fmt = (formats or {}).get(model, row["prompt_format"])
        out = {"model": model, "shots": shots, "prompt_format": fmt, "n": 1188}
        for name in ("en-en", "mean en-x", "mean x-x", "en-x / en-en", "x-x / en-en"):
            out |= {name: row[name], f"{name}_lo": row[name] - width, f"{name}_hi": row[name] + width}
        rows.append(out)
    return pd.DataFrame(rows)


def test_means_chart_error_bars_are_the_intervals_of_the_format_shown(tmp_path):
    ds = synthetic_scores(["A", "B", "C"])
    summary = summary_table(ds, 2)
    other = {"C": "v1" if summary.loc["C", "prompt_format"] == "v2" else "v2"}  # C's interval: the other format
    intervals = pd.concat([scenario_rows(summary, 2, formats=other), scenario_rows(summary, 0, width=9.0)])
    errors = mean_errors(summary, intervals, 2)
    assert errors["mean en-x"].loc["A", "lo"] == pytest.approx(summary.loc["A", "mean en-x"] - 5)
    assert errors["mean x-x"].loc["B", "hi"] == pytest.approx(summary.loc["B", "mean x-x"] + 5)
    assert errors["mean en-x"].loc["C"].isna().all()  # no interval of the format the bar shows
    drawn = {}
    original = matplotlib.axes.Axes.errorbar

    def spy(ax, x, y, *args, **kwargs):
        drawn[(round(float(x), 6), round(float(y), 1))] = kwargs["xerr"]
        return original(ax, x, y, *args, **kwargs)

    matplotlib.axes.Axes.errorbar = spy
    try:
        assert_png(means_chart(ds, 2, tmp_path / "m.png", intervals=intervals))
    finally:
        matplotlib.axes.Axes.errorbar = original
    assert len(drawn) == 4  # A and B, two means each; none for C
    assert all(np.allclose(xerr, [[5.0], [5.0]]) for xerr in drawn.values())
    assert (round(summary.loc["A", "mean en-x"], 6), -0.2) in drawn  # model 0, first hue level


def test_means_figure_command_takes_the_scenario_intervals(tmp_path):
    ds = synthetic_scores(["A", "B"], shots=(0,))
    scores_csv, intervals_csv = tmp_path / "direction_scores.csv", tmp_path / "scenario_intervals.csv"
    ds.to_csv(scores_csv, index=False)
    scenario_rows(summary_table(ds, 0), 0).to_csv(intervals_csv, index=False)
    out = tmp_path / "means_0shot.png"
    args = ["figures", "--direction-scores", str(scores_csv), "--kind", "means", "--shots", "0", "--out", str(out)]
    assert main(args + ["--intervals", str(intervals_csv), "--format-choice", "per_model"]) == 0
    assert_png(out)
    pd.read_csv(intervals_csv).drop(columns=["mean x-x_hi"]).to_csv(intervals_csv, index=False)
    assert main(args + ["--intervals", str(intervals_csv)]) == 2  # a broken table is one line naming the column
