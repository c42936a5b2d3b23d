"""The error stage's commands as the rules call them (`python -m xmrc ...`), end to end on hand-built runs,
and bad input as one-line errors."""

import pandas as pd
import pytest

from helpers.workflow import assert_one_line_error, xmrc
from xmrc.io import read_parquet
from xmrc.tables import direction_scores

ENGLISH = "The Normans gave their name to Normandy, a region in France."
GERMAN = "Die Normannen gaben der Normandie, einer Region in Frankreich, ihren Namen."
GENERATION_KEYS = ["model", "shots", "prompt_format", "id", "context_lang", "question_lang"]


@pytest.fixture(scope="module")
def run_files(tmp_path_factory):
    """Two models, two formats, directions en-en, en-de, de-de, four items. Model A (better in v1) answers en-de
    in German (language errors) and item i3 with nothing; model B is better in v2."""
    root = tmp_path_factory.mktemp("errors_run")
    ids = ["i0", "i1", "i2", "i3"]
    questions = pd.DataFrame(
        [{"id": i, "lang": lang, "question": f"Question {i} ({lang})?"} for i in ids for lang in ("en", "de")]
    )
    questions.to_parquet(root / "xquad.parquet")
    generations, scores = [], []
    for model, better in (("A", "v1"), ("B", "v2")):
        for fmt in ("v1", "v2"):
            rows, score_rows = [], []
            for c, q in (("en", "en"), ("en", "de"), ("de", "de")):
                for i in ids:
                    prediction = GERMAN if (model, c, q) == ("A", "en", "de") else f"wrong {i}"
                    prediction = "" if (model, i) == ("A", "i3") else prediction
                    # the worse format gets nothing right; A is right only on i0 in de-de, B on i0 everywhere
                    right = fmt == better and i == "i0" and (model == "B" or c == "de")
                    rows.append(
                        {
                            "model": model,
                            "shots": 2,
                            "prompt_format": fmt,
                            "id": i,
                            "context_lang": c,
                            "question_lang": q,
                            "answer_lang": c,
                            "gold": ENGLISH if c == "en" else GERMAN,
                            "raw_output": f"Answer: {prediction}",
                            "prediction": prediction,
                            "prompt_tokens": 10,
                            "output_tokens": 3,
                        }
                    )
                    score_rows.append(
                        {**{k: rows[-1][k] for k in GENERATION_KEYS}, "em": float(right), "f1": float(right)}
                    )
            generations.append(root / f"gen-{model}-{fmt}.parquet")
            scores.append(root / f"score-{model}-{fmt}.parquet")
            pd.DataFrame(rows).to_parquet(generations[-1])
            pd.DataFrame(score_rows).to_parquet(scores[-1])
    items = pd.concat([read_parquet(p) for p in scores], ignore_index=True)
    direction_scores(items).to_csv(root / "direction_scores.csv", index=False)
    return {"root": root, "generations": generations, "scores": scores}


def test_error_stage_end_to_end(run_files, tiny_models):
    root = run_files["root"]
    out = root / "out"
    result = xmrc(
        "wrong-answers",
        "--data",
        root / "xquad.parquet",
        "--generations",
        *run_files["generations"],
        "--scores",
        *run_files["scores"],
        "--direction-scores",
        root / "direction_scores.csv",
        "--shots",
        2,
        "--scenario",
        "en-x",
        "--out",
        out / "wrong.parquet",
        "--out-counts",
        out / "counts.csv",
    )
    assert result.returncode == 0, result.stderr
    wrong = read_parquet(out / "wrong.parquet")
    assert set(zip(wrong["model"], wrong["prompt_format"])) == {("A", "v1"), ("B", "v2")}
    assert len(wrong) == 8 + 6  # A: everything wrong in en-en, en-de; B: all but i0

    result = xmrc(
        "detect-language", "--wrong-answers", out / "wrong.parquet", "--threads", 1, "--out", out / "language.parquet"
    )
    assert result.returncode == 0, result.stderr
    result = xmrc(
        "judge",
        "--wrong-answers",
        out / "wrong.parquet",
        "--registry",
        "config/models.yaml",
        "--model",
        "tiny-qwen2-chat",
        "--weights",
        tiny_models["qwen2-chat"],
        "--dtype",
        "float32",
        "--chunk-size",
        5,
        "--out",
        out / "judge.parquet",
    )
    assert result.returncode == 0, result.stderr
    judge = read_parquet(out / "judge.parquet")
    assert len(judge) == len(wrong) and set(judge["verdict"]) <= {0, 1, 2, 3}

    result = xmrc(
        "error-tables",
        "--counts",
        out / "counts.csv",
        "--wrong-answers",
        out / "wrong.parquet",
        "--language",
        out / "language.parquet",
        "--judge",
        out / "judge.parquet",
        "--shots",
        2,
        "--scenario",
        "en-x",
        "--out-dir",
        out / "tables",
        "--out-items",
        out / "typed.parquet",
    )
    assert result.returncode == 0, result.stderr
    table7 = pd.read_csv(out / "tables/language_error_2shot_en-x.csv", index_col="model")
    assert table7.loc["A", "en-de"] == 75.0  # i3 is blank, not German
    assert table7.loc["B", "en-de"] == 0.0
    summary = pd.read_csv(out / "tables/error_summary_2shot_en-x.csv", index_col="model")
    assert summary["prompt_format"].to_dict() == {"A": "v1", "B": "v2"}
    agreement = pd.read_csv(out / "tables/blank_agreement_2shot_en-x.csv", index_col="model")
    assert agreement.loc["A", "rule blank"] == 2 and agreement.loc["B", "rule blank"] == 0

    result = xmrc(
        "error-figure",
        "--items",
        out / "typed.parquet",
        "--shots",
        2,
        "--scenario",
        "en-x",
        "--out",
        out / "errors.png",
    )
    assert result.returncode == 0, result.stderr
    assert (out / "errors.png").read_bytes()[:4] == b"\x89PNG"


def test_missing_or_mismatched_inputs_are_one_line_errors(run_files, tmp_path):
    root = run_files["root"]
    common = [
        "--data",
        root / "xquad.parquet",
        "--shots",
        2,
        "--scenario",
        "en-x",
        "--out",
        tmp_path / "w.parquet",
        "--out-counts",
        tmp_path / "c.csv",
    ]
    result = xmrc(
        "wrong-answers",
        "--generations",
        *run_files["generations"],
        "--scores",
        *run_files["scores"][:2],
        "--direction-scores",
        root / "direction_scores.csv",
        *common,
    )
    assert_one_line_error(result, "4 generation file(s) but 2 score file(s)")
    result = xmrc(
        "wrong-answers", "--generations", tmp_path / "none.parquet", "--scores", run_files["scores"][0], *common
    )
    assert_one_line_error(result, "none.parquet", "file not found")
    result = xmrc("wrong-answers", "--generations", root / "xquad.parquet", "--scores", run_files["scores"][0], *common)
    assert_one_line_error(result, "xquad.parquet", "missing column")
    result = xmrc(
        "wrong-answers", "--generations", run_files["generations"][0], "--scores", run_files["scores"][0], *common
    )
    assert_one_line_error(result, "--direction-scores is required")


def test_judge_problems_are_one_line_errors(run_files, tmp_path):
    wrong = tmp_path / "wrong.parquet"
    pd.DataFrame(
        [
            {
                "model": "A",
                "shots": 2,
                "prompt_format": "v1",
                "context_lang": "en",
                "question_lang": "de",
                "id": "i0",
                "question": "Wer?",
                "raw_output": "",
            }
        ]
    ).to_parquet(wrong)
    common = ["--wrong-answers", wrong, "--registry", "config/models.yaml", "--out", tmp_path / "j.parquet"]
    assert_one_line_error(xmrc("judge", "--model", "no-such-judge", *common), "unknown model 'no-such-judge'")
    assert_one_line_error(
        xmrc("judge", "--model", "tiny-qwen2-chat", "--weights", tmp_path / "absent", *common),
        "weights directory",
        "not found",
    )
    assert_one_line_error(xmrc("judge", "--model", "gpt-4o", *common), "api backend")


def test_tables_from_inputs_of_different_runs_are_one_line_errors(run_files, tmp_path):
    keys = {"model": "A", "shots": 2, "prompt_format": "v1", "context_lang": "en", "question_lang": "de"}
    pd.DataFrame([{**keys, "n_items": 4, "n_wrong": 2}]).to_csv(tmp_path / "c.csv", index=False)
    pd.DataFrame([{**keys, "id": i, "rule_blank": False} for i in ("i0", "i1")]).to_parquet(tmp_path / "w.parquet")
    pd.DataFrame(
        [
            {**keys, "id": i, "prediction_lang": "de", "intruding_lang": "de", "language_error": True}
            for i in ("i0", "i1")
        ]
    ).to_parquet(tmp_path / "l.parquet")
    pd.DataFrame([{**keys, "id": "i0", "verdict": 0}]).to_parquet(tmp_path / "j.parquet")
    result = xmrc(
        "error-tables",
        "--counts",
        tmp_path / "c.csv",
        "--wrong-answers",
        tmp_path / "w.parquet",
        "--language",
        tmp_path / "l.parquet",
        "--judge",
        tmp_path / "j.parquet",
        "--shots",
        2,
        "--scenario",
        "en-x",
        "--out-dir",
        tmp_path / "t",
        "--out-items",
        tmp_path / "t.parquet",
    )
    assert_one_line_error(result, "judge table lacks wrong answer 'i1'")
