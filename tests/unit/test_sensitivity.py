import numpy as np
import pandas as pd
import pytest

from xmrc.bootstrap import BootstrapSettings
from xmrc.exceptions import XmrcError
from xmrc.sensitivity import (
    apply_arm,
    arm_names,
    describe_change,
    largest_effects,
    markdown_table,
    paired_difference,
    sensitivity_table,
)

STUDY = {
    "run": "protocol",
    "shots": [2],
    "protocol": {"layout": "paper", "extraction": "first_line"},
    "oracle": {"enabled": False},
    "protocol_study": {
        "arm": None,
        "baseline": {"shots": [0, 2], "oracle": {"enabled": True}},
        "every_arm": {"shots": [2]},
        "arms": {
            "layout": {"protocol": {"layout": "compact"}},
            "extraction": {"protocol": {"extraction": "answer_label"}},
        },
    },
}
SETTINGS = BootstrapSettings(resamples=200, seed=0)
LANGS = ["en", "de", "zh"]


def test_an_arm_is_the_baseline_with_its_switch_flipped_under_its_own_run_name():
    assert arm_names(STUDY) == ["baseline", "layout", "extraction"]
    arm = apply_arm({**STUDY, "protocol_study": {**STUDY["protocol_study"], "arm": "layout"}})
    assert arm["run"] == "protocol-layout" and arm["shots"] == [2] and arm["oracle"] == {"enabled": True}
    assert arm["protocol"] == {"layout": "compact", "extraction": "first_line"}
    baseline = apply_arm({**STUDY, "protocol_study": {**STUDY["protocol_study"], "arm": "baseline"}})
    assert baseline["run"] == "protocol-baseline" and baseline["protocol"]["layout"] == "paper"
    assert apply_arm(STUDY) is STUDY
    with pytest.raises(XmrcError, match=r"^protocol_study.arm: unknown arm 'nope' \(expected one of baseline, layout"):
        apply_arm({**STUDY, "protocol_study": {**STUDY["protocol_study"], "arm": "nope"}})


def test_the_change_names_the_key_and_both_readings():
    assert describe_change(STUDY, {"protocol": {"layout": "compact"}}) == "protocol.layout: paper -> compact"
    assert describe_change(STUDY, {"errors": {"wrong_answer": {"metric": "f1"}}}) == (
        "errors.wrong_answer.metric: null -> f1"
    )


def _values(num, den=None):
    num = np.asarray(num, dtype=float)
    return pd.DataFrame({"id": [f"i{k}" for k in range(len(num))], "num": num, "den": den if den is not None else 1.0})


def test_paired_difference_resamples_the_same_items_in_both_runs():
    rng = np.random.default_rng(0)
    base = rng.uniform(0, 100, 40)
    shifted = paired_difference(_values(base), _values(base + 10), SETTINGS)
    # a constant shift of every item: the paired interval is that shift exactly, whatever the items' spread
    assert shifted["difference"] == pytest.approx(10) and shifted["low"] == pytest.approx(10)
    assert shifted["high"] == pytest.approx(10) and shifted["excludes_zero"] and shifted["n"] == 40
    same = paired_difference(_values(base), _values(base), SETTINGS)
    assert same["difference"] == 0 and same["low"] == 0 and same["high"] == 0 and not same["excludes_zero"]
    noisy = paired_difference(_values(base), _values(rng.uniform(0, 100, 40)), SETTINGS)
    assert noisy["low"] < noisy["difference"] < noisy["high"]


def test_a_share_of_wrong_answers_is_a_ratio_of_sums_over_items():
    # per id: language errors / wrong answers; ids with no wrong answer in one run still pair
    base = _values([1, 0, 2, 0], den=[2, 1, 2, 0])
    arm = _values([0, 0, 1, 1], den=[2, 1, 2, 1])
    result = paired_difference(base, arm, SETTINGS)
    assert result["baseline"] == pytest.approx(3 / 5) and result["arm"] == pytest.approx(2 / 6)
    assert paired_difference(_values([1]), _values([1], den=[0.0]), SETTINGS) is None


def _run(tmp_path, name, f1_shift, formats=("v1", "v2")):
    run = tmp_path / f"protocol-{name}"
    (run / "tables").mkdir(parents=True)
    rows = []
    for fmt in formats:
        for context, question in [("en", q) for q in LANGS] + [(x, x) for x in LANGS if x != "en"]:
            for k in range(8):
                f1 = min(1.0, 0.1 * k + f1_shift + (0.2 if fmt == "v1" else 0.0))
                rows.append(("M", 2, fmt, context, question, f"i{k}", float(f1 == 1.0), f1))
    columns = ["model", "shots", "prompt_format", "context_lang", "question_lang", "id", "em", "f1"]
    pd.DataFrame(rows, columns=columns).to_parquet(run / "tables/item_scores.parquet")
    pd.DataFrame({"model": ["M"], "prompt_format": ["v1"]}).to_csv(run / "tables/summary_2shot.csv", index=False)
    return run


def test_sensitivity_table_pairs_every_arm_with_the_baseline(tmp_path):
    _run(tmp_path, "baseline", 0.0)
    _run(tmp_path, "layout", 0.05)
    # the extraction arm did not run: left out, no error
    table = sensitivity_table(tmp_path, STUDY, SETTINGS)
    assert set(table["switch"]) == {"layout"} and set(table["model"]) == {"M"}
    assert list(table["metric"]) == ["F1 en-en", "F1 mean en-x", "F1 mean x-x", "EM mean en-x"]
    f1 = table.set_index("metric").loc["F1 mean en-x"]
    assert f1["difference"] == pytest.approx(5.0) and f1["excludes_zero"] and f1["n"] == 8
    assert f1["change"] == "protocol.layout: paper -> compact"
    wide = markdown_table(table)
    assert wide.loc[0, "F1 mean en-x"].startswith("+5.00 [+5.00, +5.00]*")
    assert list(largest_effects(table, ("F1 mean en-x",))["switch"]) == ["layout"]
    with pytest.raises(XmrcError, match="the baseline run is missing"):
        sensitivity_table(tmp_path / "elsewhere", STUDY, SETTINGS)


def test_forest_plot_draws_every_metric(tmp_path):
    from xmrc.sensitivity_plot import forest_plot

    _run(tmp_path, "baseline", 0.0)
    _run(tmp_path, "layout", 0.05)
    _run(tmp_path, "extraction", 0.0)
    table = sensitivity_table(tmp_path, STUDY, SETTINGS)
    path = forest_plot(table, tmp_path / "forest.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and len(table) == 8


def test_an_arm_that_changes_the_format_choice_compares_the_reported_formats(tmp_path):
    study = {**STUDY, "tables": {"format_choice": "per_shots"}}
    study["protocol_study"] = {
        **STUDY["protocol_study"],
        "arms": {"format_choice": {"tables": {"format_choice": "per_model"}}},
    }
    _run(tmp_path, "baseline", 0.0)
    arm = _run(tmp_path, "format_choice", 0.0)
    pd.DataFrame({"model": ["M"], "prompt_format": ["v2"]}).to_csv(arm / "tables/summary_2shot.csv", index=False)
    f1 = sensitivity_table(tmp_path, study, SETTINGS).set_index("metric").loc["F1 mean en-x"]
    # reported v1 (+0.2 F1 on every item) in the baseline, v2 in the arm
    assert f1["difference"] == pytest.approx(-20.0) and f1["change"] == "tables.format_choice: per_shots -> per_model"


def test_error_rates_count_every_scored_item_and_pair_on_items(tmp_path):
    from xmrc.sensitivity import error_metrics

    run = _run(tmp_path, "baseline", 0.0)
    (run / "errors/2shot_en-x").mkdir(parents=True)
    typed = pd.DataFrame(
        {
            "model": "M",
            "context_lang": "en",
            "question_lang": "de",
            "id": ["i0", "i1"],
            "language_error": [True, False],
            "verdict": [0, 2],
        }
    )
    typed.to_parquet(run / "errors/2shot_en-x/typed_answers.parquet")
    values = error_metrics(run, {"shots": 2, "scenario": "en-x", "prompt_format": "v1"})
    frame = values["language error %"].frame
    assert len(frame) == 2 * 8 and frame["den"].sum() == 2 and frame["num"].sum() == 100.0
    assert values["generation failure %"].frame["num"].sum() == 100.0


def test_a_derived_arm_starts_from_the_baseline_without_what_its_switch_touches(tmp_path):
    from xmrc.sensitivity import override_args, seed_from_baseline

    base = _run(tmp_path, "baseline", 0.0)
    (base / "errors").mkdir()
    (base / "errors/language.parquet").write_text("x")
    (base / "generations.shards").mkdir()
    backdated = seed_from_baseline(base, tmp_path / "protocol-lingua", [str(base / "errors/language.parquet")])
    arm = tmp_path / "protocol-lingua"
    assert backdated == 1 and (arm / "errors/language.parquet").stat().st_mtime == 1.0  # older than its input
    times = {path.stat().st_mtime for path in arm.rglob("*") if path.is_file() and path.name != "language.parquet"}
    assert times == {max(path.stat().st_mtime for path in base.rglob("*") if path.is_file())}
    assert not (arm / "generations.shards").exists() and not (tmp_path / "protocol-lingua.copying").exists()
    assert override_args({"protocol": {"lingua_languages": "all"}}) == ['protocol={"lingua_languages": "all"}']


DRY_RUN = """
[Thu Dec  3 12:44:24 2026]
rule language_errors:
    input: results/p-baseline/errors/2shot_en-x/wrong_answers.parquet
    output: results/p-baseline/errors/2shot_en-x/language.parquet
    jobid: 36
    reason: Params have changed since last execution: before: 'xquad' now: 'all'
[Thu Dec  3 12:44:24 2026]
rule error_tables:
    input: results/p-baseline/errors/2shot_en-x/language.parquet
    output: results/p-baseline/tables/error_rates_2shot_en-x.csv, results/p-baseline/tables/blank_2shot_en-x.csv
    reason: Input files updated by another job: results/p-baseline/errors/2shot_en-x/language.parquet
[Thu Dec  3 12:44:24 2026]
localrule tables:
    output: results/p-baseline/tables/a.csv, results/p-baseline/tables/b.md
    reason: Params have changed since last execution
"""


def test_the_outputs_a_switch_touches_are_those_whose_params_changed():
    from xmrc.sensitivity import params_changed_outputs

    assert params_changed_outputs(DRY_RUN) == [
        "results/p-baseline/errors/2shot_en-x/language.parquet",
        "results/p-baseline/tables/a.csv",
        "results/p-baseline/tables/b.md",
    ]
