import numpy as np
import pandas as pd
import pytest

from helpers import PUBLISHED_TABLES
from xmrc import LANGUAGES
from xmrc.exceptions import XmrcError
from xmrc.tables import (
    DEFAULT_FORMAT_CHOICE,
    DEFAULT_FORMAT_CRITERION,
    DIRECTION_COLUMNS,
    FORMAT_CRITERIA,
    PAPER_DIRECTIONS,
    SUMMARY_COLUMNS,
    chosen_rows,
    criterion_text,
    direction_scores,
    from_language_table,
    item_counts,
    language_table,
    summary_table,
    table_scenarios,
    write_run_tables,
    write_table,
)

RATIO_COLUMNS = ["en-x / en-en", "x-x / en-en"]
MEAN_COLUMNS = ["en-en", "mean en-x", "mean x-x"]


def ref(name: str) -> pd.DataFrame:
    return pd.read_csv(PUBLISHED_TABLES / f"{name}.csv")


def synthetic_items(models=("B-model", "A-model"), shots=(0, 2), formats=("v1", "v2"), n=4, seed=0):
    """Per-item scores for every paper direction; v2 is better for the first model only."""
    rng = np.random.default_rng(seed)
    rows = []
    for mi, model in enumerate(models):
        for s in shots:
            for fmt in formats:
                p = 0.8 if (fmt == "v2") == (mi == 0) else 0.3
                for c, q in PAPER_DIRECTIONS:
                    for i in range(n):
                        em = float(rng.random() < p)
                        rows.append(
                            dict(
                                model=model,
                                shots=s,
                                prompt_format=fmt,
                                context_lang=c,
                                question_lang=q,
                                id=str(i),
                                em=em,
                                f1=max(em, rng.random() / 2),
                            )
                        )
    return pd.DataFrame(rows).sample(frac=1, random_state=1).reset_index(drop=True)


@pytest.fixture(scope="module")
def paper_2shot_long():
    wide = pd.concat(
        [
            ref("table6a_2shot_f1_en-x").merge(ref("table6b_2shot_f1_x-x"), on="model"),
            ref("table10a_2shot_f1_en-x_tuned").merge(ref("table10b_2shot_f1_x-x_tuned"), on="model"),
        ]
    )
    return from_language_table(wide, "f1")


def test_direction_scores_aggregates_in_percent_and_paper_order():
    items = synthetic_items()
    ds = direction_scores(items)
    assert list(ds.columns) == list(DIRECTION_COLUMNS)
    assert len(ds) == 2 * 2 * 2 * 23
    assert (ds["n"] == 4).all()
    assert list(pd.unique(ds["model"])) == list(pd.unique(items["model"]))
    first = ds[(ds["model"] == ds["model"].iloc[0]) & (ds["shots"] == 0) & (ds["prompt_format"] == "v1")]
    assert list(zip(first["context_lang"], first["question_lang"])) == PAPER_DIRECTIONS
    assert PAPER_DIRECTIONS[:2] == [("en", "en"), ("en", "de")] and PAPER_DIRECTIONS[12] == ("de", "de")
    row = first.iloc[3]
    sel = items[
        (items["model"] == row["model"])
        & (items["shots"] == 0)
        & (items["prompt_format"] == "v1")
        & (items["context_lang"] == row["context_lang"])
        & (items["question_lang"] == row["question_lang"])
    ]
    assert row["f1"] == pytest.approx(sel["f1"].mean() * 100)
    assert row["em"] == pytest.approx(sel["em"].mean() * 100)


def test_direction_scores_rejects_missing_column_and_duplicates():
    items = synthetic_items(n=1)
    with pytest.raises(XmrcError, match="f1") as err:
        direction_scores(items.drop(columns=["f1"]))
    assert "\n" not in str(err.value)
    with pytest.raises(XmrcError, match="twice"):
        direction_scores(pd.concat([items, items.iloc[:1]]))


def test_summary_reproduces_paper_table2(paper_2shot_long):
    summary = summary_table(paper_2shot_long)
    assert list(summary.columns) == list(SUMMARY_COLUMNS)
    assert summary.index.name == "model"
    assert (summary["prompt_format"] == "-").all()
    table2 = ref("table2_2shot_summary").set_index("model").drop(index="DeepSeek-V3")
    assert set(table2.index) == set(summary.index)
    ours = summary.loc[table2.index]
    mean_dev = (ours[MEAN_COLUMNS] - table2[MEAN_COLUMNS]).abs().to_numpy().max()
    ratio_dev = (ours[RATIO_COLUMNS] - table2[RATIO_COLUMNS]).abs().to_numpy().max()
    assert mean_dev <= 0.01, mean_dev
    assert ratio_dev <= 0.01, ratio_dev  # the paper's ratios are not always rounded ratios (README)


def test_summary_chooses_better_format_per_model_and_defaults_to_largest_shots():
    ds = direction_scores(synthetic_items())
    summary = summary_table(ds)
    assert list(summary.index) == ["B-model", "A-model"]
    assert summary["prompt_format"].to_dict() == {"B-model": "v2", "A-model": "v1"}
    chosen = ds[(ds["shots"] == 2) & (ds["model"] == "B-model") & (ds["prompt_format"] == "v2")]
    en_x = chosen[(chosen["context_lang"] == "en") & (chosen["question_lang"] != "en")]["f1"]
    x_x = chosen[chosen["context_lang"] != "en"]["f1"]
    en_en = chosen[chosen["question_lang"] == "en"]["f1"].item()
    assert len(en_x) == len(x_x) == 11
    row = summary.loc["B-model"]
    assert row["en-en"] == pytest.approx(en_en)
    assert row["mean en-x"] == pytest.approx(en_x.mean())
    assert row["mean x-x"] == pytest.approx(x_x.mean())
    assert row["en-x / en-en"] == pytest.approx(en_x.mean() / en_en)
    assert summary_table(ds, shots=2).equals(summary)
    assert not summary_table(ds, shots=0).equals(summary)
    with pytest.raises(XmrcError, match="shots=1"):
        summary_table(ds, shots=1)


def test_summary_without_shots_column_uses_all_rows(paper_2shot_long):
    assert "shots" not in paper_2shot_long.columns
    one = paper_2shot_long[paper_2shot_long["model"] == "GPT-4o"]
    assert summary_table(one).index.tolist() == ["GPT-4o"]


def test_summary_and_language_table_name_missing_columns():
    ds = direction_scores(synthetic_items(n=1))
    with pytest.raises(XmrcError, match="question_lang"):
        summary_table(ds.drop(columns=["question_lang"]))
    with pytest.raises(XmrcError, match="em"):
        language_table(ds.drop(columns=["em"]), "en-x", "em", 2)


@pytest.mark.parametrize(
    "name, scenario, metric",
    [
        ("table6a_2shot_f1_en-x", "en-x", "f1"),
        ("table6b_2shot_f1_x-x", "x-x", "f1"),
        ("table5a_0shot_em_en-x", "en-x", "em"),
        ("table5d_0shot_f1_x-x", "x-x", "f1"),
    ],
)
def test_language_table_round_trips_paper_tables(name, scenario, metric):
    wide = ref(name).set_index("model")
    long = from_language_table(wide, metric)
    if metric != "f1":
        long["f1"] = 0.0  # format choice needs F1; one format here, so any value does
    back = language_table(long, scenario, metric, shots=None)
    pd.testing.assert_frame_equal(back, wide, check_names=False)
    assert back.index.name == "model"


def test_language_table_formats_and_errors():
    ds = direction_scores(synthetic_items())
    en_x = language_table(ds, "en-x", "f1", 2)
    assert list(en_x.columns) == [f"en-{x}" for x in LANGUAGES]
    x_x = language_table(ds, "x-x", "em", 0, prompt_format="v1")
    assert list(x_x.columns) == [f"{x}-{x}" for x in LANGUAGES[1:]]
    v1 = ds[
        (ds["shots"] == 0)
        & (ds["prompt_format"] == "v1")
        & (ds["context_lang"] == "de")
        & (ds["question_lang"] == "de")
        & (ds["model"] == "B-model")
    ]["em"].item()
    assert x_x.loc["B-model", "de-de"] == v1
    with pytest.raises(XmrcError, match="scenario"):
        language_table(ds, "x-en", "f1", 2)
    with pytest.raises(XmrcError, match="metric"):
        language_table(ds, "en-x", "acc", 2)
    with pytest.raises(XmrcError, match="v3"):
        language_table(ds, "en-x", "f1", 2, prompt_format="v3")


def test_write_table_csv_and_markdown(tmp_path):
    df = pd.DataFrame(
        {"en-en": [75.966, np.nan], "prompt_format": ["v1", "v|2"]}, index=pd.Index(["m1", "m2"], name="model")
    )
    csv, md = write_table(df, tmp_path / "sub" / "t", "%.2f")
    assert csv.name == "t.csv" and md.name == "t.md"
    back = pd.read_csv(csv, index_col="model")
    assert back.loc["m1", "en-en"] == 75.97 and np.isnan(back.loc["m2", "en-en"])
    lines = md.read_text().splitlines()
    assert lines[0] == "| model | en-en | prompt_format |"
    assert lines[1] == "|:---|---:|:---|"
    assert lines[2] == "| m1 | 75.97 | v1 |"
    assert lines[3] == "| m2 |  | v\\|2 |"


def test_write_run_tables(tmp_path):
    ds = direction_scores(synthetic_items())
    paths = write_run_tables(ds, tmp_path)
    names = sorted(p.name for p in paths)
    expected = sorted(
        f"{stem}.{ext}"
        for s in (0, 2)
        for stem in [f"summary_{s}shot"] + [f"{m}_{s}shot_{sc}" for m in ("f1", "em") for sc in ("en-x", "x-x")]
        for ext in ("csv", "md")
    )
    assert names == expected
    assert all(p.exists() and p.stat().st_size > 0 for p in paths)
    summary = pd.read_csv(tmp_path / "summary_2shot.csv", index_col="model")
    assert list(summary.columns) == list(SUMMARY_COLUMNS)
    with pytest.raises(XmrcError, match="n"):
        write_run_tables(ds.drop(columns=["n"]), tmp_path)


def test_models_not_in_summary_are_rows_of_the_per_language_tables_only(tmp_path):
    ds = direction_scores(synthetic_items())
    write_run_tables(ds, tmp_path, not_in_summary=["A-model"])
    for shots in (0, 2):
        assert list(pd.read_csv(tmp_path / f"summary_{shots}shot.csv")["model"]) == ["B-model"]
        assert list(pd.read_csv(tmp_path / f"f1_{shots}shot_en-x.csv")["model"]) == ["B-model", "A-model"]


def test_write_run_tables_skips_absent_scenario(tmp_path):
    ds = direction_scores(synthetic_items(models=("M",), shots=(0,), formats=("v1",)))
    ds = ds[ds["context_lang"] == "en"]
    names = {p.name for p in write_run_tables(ds, tmp_path)}
    assert "f1_0shot_en-x.csv" in names and not any("x-x" in n for n in names)
    assert np.isnan(pd.read_csv(tmp_path / "summary_0shot.csv")["mean x-x"]).all()


def xy_items(languages=("en", "de", "zh"), n=3):
    """Item scores of every (context, question) pair of `languages`, one setting: F1 = 0.1 * (pair number)."""
    pairs = [(c, q) for c in languages for q in languages]
    return pd.DataFrame(
        [
            dict(
                model="M",
                shots=0,
                prompt_format="v1",
                context_lang=c,
                question_lang=q,
                id=f"i{k}",
                em=0.0,
                f1=0.1 * number,
            )
            for number, (c, q) in enumerate(pairs)
            for k in range(n)
        ]
    )


def test_x_y_directions_sort_after_the_paper_ones_context_major():
    ds = direction_scores(xy_items().sample(frac=1, random_state=0))
    assert [f"{c}-{q}" for c, q in zip(ds["context_lang"], ds["question_lang"])] == [
        "en-en",
        "en-de",
        "en-zh",
        "de-de",
        "zh-zh",
        "de-en",
        "de-zh",
        "zh-en",
        "zh-de",
    ]
    assert set(ds["n"]) == {3}


def test_table_scenarios_follow_the_directions_of_the_run():
    paper = PAPER_DIRECTIONS
    assert table_scenarios(paper) == ["en-x", "x-x"]
    assert table_scenarios([("en", "en"), ("en", "de")]) == ["en-x"]
    assert table_scenarios([("de", "de")]) == ["x-x"]
    assert table_scenarios([("de", "zh"), ("en", "en")]) == ["en-x", "x-y"]


def test_write_run_tables_adds_x_y_beyond_the_paper_directions(tmp_path):
    ds = direction_scores(xy_items())
    names = {p.name for p in write_run_tables(ds, tmp_path)}
    assert {"f1_0shot_en-x.csv", "f1_0shot_x-x.csv", "f1_0shot_x-y.csv", "em_0shot_x-y.md"} <= names
    xy = pd.read_csv(tmp_path / "f1_0shot_x-y.csv", index_col="model")
    assert list(xy.columns) == ["en-en", "en-de", "en-zh", "de-de", "zh-zh", "de-en", "de-zh", "zh-en", "zh-de"]
    assert xy.loc["M", "de-zh"] == pytest.approx(50.0)  # pair number 5 of the context-major order
    # the paper's directions alone write no x-y table (the paper run's files are unchanged)
    paper_only = ds[[(c, q) in set(PAPER_DIRECTIONS) for c, q in zip(ds["context_lang"], ds["question_lang"])]]
    assert not any("x-y" in p.name for p in write_run_tables(paper_only, tmp_path / "paper"))


def formats_disagreeing():
    """v1 is better on en-x (60 vs 50 F1), v2 on x-x (90 vs 10) and so on all directions together."""
    rows = []
    for fmt, en_x, x_x in (("v1", 60.0, 10.0), ("v2", 50.0, 90.0)):
        for context, question in PAPER_DIRECTIONS:
            f1 = 80.0 if question == "en" else en_x if context == "en" else x_x
            rows.append(
                dict(
                    model="M",
                    shots=2,
                    prompt_format=fmt,
                    context_lang=context,
                    question_lang=question,
                    n=10,
                    em=f1,
                    f1=f1,
                )
            )
    return pd.DataFrame(rows, columns=list(DIRECTION_COLUMNS))


def test_format_criterion_en_x_and_all_directions_pick_different_formats(tmp_path):
    ds = formats_disagreeing()
    by_en_x = summary_table(ds)  # the default: the paper's xMRC performance
    assert by_en_x.loc["M", "prompt_format"] == "v1" and by_en_x.loc["M", "mean en-x"] == 60.0
    assert by_en_x.loc["M", "format_criterion"] == FORMAT_CRITERIA["en-x"] == FORMAT_CRITERIA[DEFAULT_FORMAT_CRITERION]
    by_all = summary_table(ds, criterion="all")
    assert by_all.loc["M", "prompt_format"] == "v2" and by_all.loc["M", "mean x-x"] == 90.0
    assert by_all.loc["M", "format_criterion"] == FORMAT_CRITERIA["all"]
    assert language_table(ds, "x-x", "f1", 2, criterion="all").loc["M", "de-de"] == 90.0
    assert language_table(ds, "x-x", "f1", 2).loc["M", "de-de"] == 10.0
    write_run_tables(ds, tmp_path, criterion="all")
    assert "| v2 | higher mean F1 over all directions |" in (tmp_path / "summary_2shot.md").read_text()
    with pytest.raises(XmrcError, match="unknown format criterion 'best'"):
        summary_table(ds, criterion="best")


def test_format_criterion_en_x_falls_back_to_all_directions_in_an_english_only_run():
    ds = formats_disagreeing()
    english = ds[ds["question_lang"] == "en"].copy()
    english.loc[english["prompt_format"] == "v2", "f1"] = 90.0
    assert summary_table(english).loc["M", "prompt_format"] == "v2"


def formats_by_shots():
    """Item scores of two models: "Split" is better in v1 at 0-shot by a little and in v2 at 2-shot by a lot (v2
    wins averaged over both); "Only2" has a 2-shot setting only, v1 better. 3 items per direction."""
    f1 = {("Split", 0, "v1"): 0.5, ("Split", 0, "v2"): 0.4, ("Split", 2, "v1"): 0.3, ("Split", 2, "v2"): 0.9}
    f1 |= {("Only2", 2, "v1"): 0.7, ("Only2", 2, "v2"): 0.2}
    rows = [
        dict(model=m, shots=s, prompt_format=f, context_lang=c, question_lang=q, id=f"i{k}", em=0.0, f1=value)
        for (m, s, f), value in f1.items()
        for c, q in PAPER_DIRECTIONS
        for k in range(3)
    ]
    return pd.DataFrame(rows)


def test_format_choice_per_model_keeps_one_format_across_the_shots_settings(tmp_path):
    ds = direction_scores(formats_by_shots())
    assert DEFAULT_FORMAT_CHOICE == "per_shots"
    per_shots = {s: summary_table(ds, s)["prompt_format"].to_dict() for s in (0, 2)}
    assert per_shots == {0: {"Split": "v1"}, 2: {"Split": "v2", "Only2": "v1"}}
    per_model = {s: summary_table(ds, s, choice="per_model") for s in (0, 2)}
    assert per_model[0]["prompt_format"].to_dict() == {"Split": "v2"}  # 0-shot shown in its worse format
    assert per_model[2]["prompt_format"].to_dict() == {"Split": "v2", "Only2": "v1"}
    assert per_model[0].loc["Split", "mean en-x"] == pytest.approx(40.0)
    stated = per_model[2]["format_criterion"].to_dict()
    assert stated["Split"] == FORMAT_CRITERIA["en-x"] + ", averaged over 0-shot and 2-shot"
    assert stated["Only2"] == FORMAT_CRITERIA["en-x"]  # one setting: nothing averaged
    assert language_table(ds, "x-x", "f1", 0, choice="per_model").loc["Split", "de-de"] == pytest.approx(40.0)
    assert (
        criterion_text("all", "per_model", [4, 0, 2])
        == FORMAT_CRITERIA["all"] + ", averaged over 0-shot, 2-shot and 4-shot"
    )
    write_run_tables(ds, tmp_path, choice="per_model")
    assert pd.read_csv(tmp_path / "summary_0shot.csv", index_col="model").loc["Split", "prompt_format"] == "v2"
    with pytest.raises(XmrcError, match="unknown format choice 'per_run'; expected one of per_shots, per_model"):
        summary_table(ds, choice="per_run")


def test_format_choice_per_model_averages_the_settings_not_the_rows():
    # 0-shot: v1 ahead by 20; 2-shot: v2 ahead by 10 with many more items per direction: averaged per setting, v1
    items = formats_by_shots()
    items = items[items["model"] == "Split"].copy()
    items.loc[(items["shots"] == 0) & (items["prompt_format"] == "v1"), "f1"] = 0.6
    extra = items[items["shots"] == 2].assign(id=lambda f: f["id"] + "-more")
    items = pd.concat([items, extra, extra.assign(id=lambda f: f["id"] + "x")])
    items.loc[(items["shots"] == 2) & (items["prompt_format"] == "v2"), "f1"] = 0.4
    ds = direction_scores(items)
    assert summary_table(ds, 2, choice="per_shots")["prompt_format"].item() == "v2"
    assert summary_table(ds, 2, choice="per_model")["prompt_format"].item() == "v1"


def test_markdown_tables_show_the_items_each_value_is_over(tmp_path):
    items = synthetic_items(models=("M", "L"), shots=(2,), formats=("v1",), n=4)
    drop = (items["model"] == "L") & (items["context_lang"] == "de") & (items["id"] == "0")
    ds = direction_scores(items[~drop])  # L: 3 items in de-de, 4 elsewhere
    write_run_tables(ds, tmp_path)
    summary = (tmp_path / "summary_2shot.md").read_text().splitlines()
    assert summary[0].startswith("| model | n | en-en |") and summary[1].startswith("|:---|:---|---:|")
    assert summary[2].startswith("| M | 4 | ") and summary[3].startswith("| L | 3–4 | ")
    en_x = (tmp_path / "f1_2shot_en-x.md").read_text().splitlines()
    assert en_x[0].startswith("| model | n | en-en |") and en_x[1].startswith("|:---|---:|")
    assert en_x[3].startswith("| L | 4 | ")
    assert (tmp_path / "f1_2shot_x-x.md").read_text().splitlines()[3].startswith("| L | 3–4 | ")
    assert "n" not in pd.read_csv(tmp_path / "summary_2shot.csv").columns  # the CSV: values only
    assert item_counts(chosen_rows(ds, 2), [("de", "de")]).to_dict() == {"M": 4, "L": 3}


def test_paper_rows_keep_each_table_to_the_papers_rows_and_put_the_others_beside_it(tmp_path):
    ds = direction_scores(synthetic_items(models=("B-model", "A-model", "C-model"), formats=("v1",), n=2))
    rows = {"summary_0shot": {"A-model", "B-model"}, "f1_2shot_en-x": {"B-model"}, "em_2shot_en-x": set()}
    paths = write_run_tables(ds, tmp_path, not_in_summary=["B-model"], rows=rows.get)
    written = {p.name for p in paths}
    assert {"summary_0shot_extra.csv", "f1_2shot_en-x_extra.md", "em_2shot_en-x_extra.csv"} <= written
    assert "f1_0shot_en-x_extra.csv" not in written  # no paper table (None): one table, every row
    read = lambda stem: sorted(pd.read_csv(tmp_path / f"{stem}.csv")["model"])  # noqa: E731
    assert read("f1_2shot_en-x") == ["B-model"] and read("f1_2shot_en-x_extra") == ["A-model", "C-model"]
    assert read("em_2shot_en-x") == [] and read("em_2shot_en-x_extra") == ["A-model", "B-model", "C-model"]
    # a summary row left out (extra_models) goes to the extra table, with the rows the paper's table lacks
    assert read("summary_0shot") == ["A-model"] and read("summary_0shot_extra") == ["B-model", "C-model"]
    assert read("summary_2shot") == ["A-model", "C-model"]  # no row filter: left out as without paper rows
    assert read("f1_0shot_en-x") == ["A-model", "B-model", "C-model"]
    extra_md = (tmp_path / "f1_2shot_en-x_extra.md").read_text().splitlines()
    assert len(extra_md) == 4 and all(line.split(" | ")[1] == "2" for line in extra_md[2:])


def test_tables_command_splits_the_papers_rows_by_the_registrys_paper_names(tmp_path, capsys):
    from xmrc.cli import main

    names = ("LLaMA-3.1-8B", "DeepSeek-V3", "Tiny-Llama-Chat")  # DeepSeek-V3: Table 2 only, not Tables 5/6
    scores = tmp_path / "direction_scores.csv"
    direction_scores(synthetic_items(models=names, shots=(2,), formats=("v1",), n=2)).to_csv(scores, index=False)
    args = ["tables", "--direction-scores", str(scores), "--format-choice", "per_model", "--paper-rows"]
    assert main(args + ["--out-dir", str(tmp_path)]) == 2
    assert "--paper-rows needs --registry" in capsys.readouterr().err
    assert main(args + ["--registry", "config/models.yaml", "--out-dir", str(tmp_path)]) == 0
    read = lambda stem: set(pd.read_csv(tmp_path / f"{stem}.csv")["model"])  # noqa: E731
    assert read("summary_2shot") == {"LLaMA-3.1-8B", "DeepSeek-V3"} and read("summary_2shot_extra") == {names[2]}
    assert read("f1_2shot_en-x") == read("em_2shot_x-x") == {"LLaMA-3.1-8B"}
    assert read("f1_2shot_en-x_extra") == {"DeepSeek-V3", "Tiny-Llama-Chat"}
