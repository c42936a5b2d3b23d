import numpy as np
import pandas as pd
import pytest

from helpers import PUBLISHED_TABLES
from xmrc import LANGUAGES
from xmrc.analysis.oracle.figures import oracle_vs_f1
from xmrc.analysis.oracle.tables import (
    SUMMARY_COLUMNS,
    direction_accuracy,
    language_table,
    summary_table,
    write_oracle_tables,
)
from xmrc.exceptions import XmrcError


def results(models=("Model-B", "Model-A"), n=4):
    """Attribution rows: item i of every direction is step-correct when i < 3, sequence-correct when i < 2,
    for the first model; the second is always right. The last item of en-de is skipped (empty answer)."""
    rows = []
    for m, model in enumerate(models):
        for lang in LANGUAGES:
            for i in range(n):
                skipped = lang == "de" and i == n - 1
                rows.append(
                    {
                        "model": model,
                        "shots": 2,
                        "prompt_format": "v1",
                        "context_lang": "en",
                        "question_lang": lang,
                        "id": f"q{i}",
                        "status": "empty_answer" if skipped else "ok",
                        "merged": i == 0,
                        "step_correct": (i < 3 or m == 1) and not skipped,
                        "sequence_correct": (i < 2 or m == 1) and not skipped,
                    }
                )
    return pd.DataFrame(rows)


def scores(frame):
    return frame[["model", "shots", "prompt_format", "context_lang", "question_lang", "id"]].assign(
        em=0.0, f1=[0.5 if i.endswith("0") else 0.0 for i in frame["id"]]
    )


def test_direction_accuracy_counts_only_attributed_items():
    frame = results()
    accuracy = direction_accuracy(frame, scores(frame))
    first = accuracy[accuracy["model"] == "Model-B"].set_index("direction")
    assert list(first.index) == [f"en-{lang}" for lang in LANGUAGES]
    assert first.loc["en-en", ["n", "skipped", "merged", "step", "sequence"]].tolist() == [4, 0, 1, 75.0, 50.0]
    assert first.loc["en-de", ["n", "skipped", "step", "sequence"]].tolist() == [3, 1, 100.0, pytest.approx(200 / 3)]
    assert first.loc["en-en", "f1"] == pytest.approx(12.5)  # F1 of the same four items, in percent
    assert list(pd.unique(accuracy["model"])) == ["Model-B", "Model-A"]


def test_summary_is_table_3_with_the_papers_columns():
    accuracy = direction_accuracy(results())
    summary = summary_table(accuracy)
    reference = pd.read_csv(PUBLISHED_TABLES / "table3_oracle.csv")
    assert ["model"] + list(summary.columns) == list(reference.columns) == ["model"] + SUMMARY_COLUMNS
    row = summary.loc["Model-B"]
    english = language_table(accuracy, "step").loc["Model-B"]
    assert row["step en-en"] == 75.0
    assert row["step en-x"] == pytest.approx(english.drop("en-en").mean())
    assert row["step en-x"] == pytest.approx((10 * 75.0 + 100.0) / 11)
    assert summary.loc["Model-A"].tolist() == [100.0] * 4


def test_language_table_rejects_unknown_kind():
    with pytest.raises(XmrcError, match="unknown oracle kind"):
        language_table(direction_accuracy(results()), "token")


def test_missing_columns_are_named():
    with pytest.raises(XmrcError, match="step_correct"):
        direction_accuracy(results().drop(columns="step_correct"))


def test_write_tables_and_figure(tmp_path):
    frame = results()
    paths = write_oracle_tables(frame, scores(frame), tmp_path)
    names = sorted(p.name for p in paths)
    assert names == sorted(
        [
            "oracle_summary.csv",
            "oracle_summary.md",
            "oracle_step_en-x.csv",
            "oracle_step_en-x.md",
            "oracle_sequence_en-x.csv",
            "oracle_sequence_en-x.md",
            "oracle_vs_f1.csv",
        ]
    )
    written = pd.read_csv(tmp_path / "oracle_summary.csv", index_col="model")
    assert np.allclose(written.values, summary_table(direction_accuracy(frame)).values, atol=0.005)
    figure = oracle_vs_f1(pd.read_csv(tmp_path / "oracle_vs_f1.csv"), tmp_path / "figure.png")
    assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and figure.stat().st_size > 10_000
