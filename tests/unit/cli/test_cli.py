"""The CLI as the rules call it: `python -m xmrc ...` in a subprocess, errors as one line with exit status 2."""

import json
import shutil

import pandas as pd
import pytest

from helpers import ROOT
from helpers.workflow import assert_one_line_error, xmrc
from xmrc.io import read_parquet

SUBSET = ROOT / "data/xquad_subset"


def test_help_lists_the_steps():
    result = xmrc("--help")
    assert result.returncode == 0
    for command in ("data", "prompts", "generate-job", "score", "aggregate", "tables", "figures", "tiny-model"):
        assert command in result.stdout


def test_data_missing_file(tmp_path):
    shutil.copy(SUBSET / "xquad.en.json", tmp_path)
    result = xmrc(
        "data",
        "--source",
        "local",
        "--local-dir",
        tmp_path,
        "--languages",
        "en",
        "de",
        "--out",
        tmp_path / "x.parquet",
        "--problems",
        tmp_path / "p.csv",
    )
    assert_one_line_error(result, "xquad.de.json", "not found")


def test_data_non_parallel(tmp_path):
    for lang in ("en", "de"):
        shutil.copy(SUBSET / f"xquad.{lang}.json", tmp_path)
    german = json.loads((tmp_path / "xquad.de.json").read_text())
    dropped = german["data"][0]["paragraphs"][1]["qas"].pop(0)["id"]
    (tmp_path / "xquad.de.json").write_text(json.dumps(german, ensure_ascii=False))
    result = xmrc(
        "data",
        "--source",
        "local",
        "--local-dir",
        tmp_path,
        "--languages",
        "en",
        "de",
        "--out",
        tmp_path / "x.parquet",
        "--problems",
        tmp_path / "p.csv",
    )
    assert_one_line_error(result, "not parallel", dropped)
    assert not (tmp_path / "x.parquet").exists()


def test_data_writes_table_and_problem_report(tmp_path):
    result = xmrc(
        "data",
        "--source",
        "local",
        "--local-dir",
        SUBSET,
        "--languages",
        "en",
        "th",
        "--out",
        tmp_path / "x.parquet",
        "--problems",
        tmp_path / "p.csv",
    )
    assert result.returncode == 0, result.stderr
    table = read_parquet(tmp_path / "x.parquet")
    assert len(table) == 100 and set(table["lang"]) == {"en", "th"}
    assert list(pd.read_csv(tmp_path / "p.csv").columns) == ["id", "lang", "kind", "detail"]


def test_unknown_model(tmp_path):
    result = xmrc(
        "prompts",
        "--data",
        tmp_path / "x.parquet",
        "--registry",
        ROOT / "config/models.yaml",
        "--model",
        "gpt-7",
        "--shots",
        2,
        "--format",
        "v1",
        "--demonstrations",
        "a",
        "b",
        "--out",
        tmp_path / "p.parquet",
    )
    assert_one_line_error(result, "unknown model 'gpt-7'")


def test_bad_config(tmp_path):
    bad = tmp_path / "c.yaml"
    bad.write_text(
        (ROOT / "config/smoke.yaml").read_text().replace("prompt_formats: [v1, v2]", "prompt_formats: [v1, v7]")
    )
    assert_one_line_error(xmrc("check-config", bad), "prompt_formats[1]", "'v7'")


def test_score_rejects_a_table_without_predictions(tmp_path):
    pd.DataFrame({"id": ["a"], "gold": ["x"]}).to_parquet(tmp_path / "g.parquet")
    result = xmrc("score", "--generations", tmp_path / "g.parquet", "--out", tmp_path / "s.parquet")
    assert_one_line_error(result, "g.parquet", "missing column(s)", "prediction")
    (tmp_path / "junk.parquet").write_text("not parquet")
    result = xmrc("score", "--generations", tmp_path / "junk.parquet", "--out", tmp_path / "s.parquet")
    assert_one_line_error(result, "junk.parquet", "not a readable Parquet")


def test_score_normalises_by_answer_language(tmp_path):
    rows = [
        ("en", "en", "en", "The Rollo", "Rollo"),
        ("zh", "zh", "zh", "东京都", "东京"),
        ("en", "zh", "en", "", "Rollo"),
    ]
    generations = pd.DataFrame(
        [
            {
                "model": "M",
                "shots": 2,
                "prompt_format": "v1",
                "id": str(i),
                "context_lang": c,
                "question_lang": q,
                "answer_lang": a,
                "prediction": p,
                "gold": g,
            }
            for i, (c, q, a, p, g) in enumerate(rows)
        ]
    )
    generations.to_parquet(tmp_path / "g.parquet")
    assert xmrc("score", "--generations", tmp_path / "g.parquet", "--out", tmp_path / "s.parquet").returncode == 0
    scores = read_parquet(tmp_path / "s.parquet")
    assert scores["em"].tolist() == [1.0, 0.0, 0.0]
    assert scores["f1"].iloc[1] == pytest.approx(0.8)  # character overlap for Chinese
    assert scores["f1"].iloc[2] == 0.0


FIVE_DEMOS = [
    "56dde1d966d3e219004dad8d",
    "56de49564396321400ee277a",
    "56de0daecffd8e1900b4b595",
    "56de0daecffd8e1900b4b596",
    "56de0f6a4396321400ee257f",
]


def test_prompts_any_direction_and_any_number_of_shots(tmp_path):
    data = tmp_path / "x.parquet"
    assert (
        xmrc(
            "data",
            "--source",
            "local",
            "--local-dir",
            SUBSET,
            "--languages",
            "en",
            "de",
            "zh",
            "--out",
            data,
            "--problems",
            tmp_path / "p.csv",
        ).returncode
        == 0
    )
    common = [
        "prompts",
        "--data",
        data,
        "--registry",
        ROOT / "config/models.yaml",
        "--model",
        "gpt-4o",
        "--format",
        "v2",
        "--languages",
        "en",
        "de",
        "zh",
        "--max-items",
        1,
    ]
    result = xmrc(
        *common, "--shots", 5, "--scenarios", "x-y", "--demonstrations", *FIVE_DEMOS, "--out", tmp_path / "p.parquet"
    )
    assert result.returncode == 0, result.stderr
    prompts = read_parquet(tmp_path / "p.parquet")
    assert len(prompts) == 9 and (prompts["answer_lang"] == prompts["context_lang"]).all()
    assert (prompts["prompt"].str.count("Context: ") == 6).all()
    result = xmrc(*common, "--shots", 6, "--demonstrations", *FIVE_DEMOS, "--out", tmp_path / "q.parquet")
    assert_one_line_error(result, "demonstrations: 6-shot needs at least 6 demonstration ids, 5 given")
    assert not (tmp_path / "q.parquet").exists()
    result = xmrc(*common, "--shots", -1, "--out", tmp_path / "q.parquet")
    assert result.returncode == 2 and "--shots" in result.stderr and "integer >= 0" in result.stderr
