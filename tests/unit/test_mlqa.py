"""A second dataset through the dataset registry: MLQA from a fixture in its own format (tests/data/mlqa_fixture),
items aligned by direction, demonstrations from its validation split, and the run's commands end to end."""

import datasets
import pandas as pd
import pytest

from helpers import ROOT
from helpers.workflow import assert_one_line_error, xmrc
from xmrc import data, dataset_registry
from xmrc.cli import main
from xmrc.exceptions import XmrcError
from xmrc.io import read_parquet
from xmrc.prompts import build_prompt_table

FIXTURE = ROOT / "tests/data/mlqa_fixture"
LANGS = ["en", "de", "zh"]
# Fixture ids (sha1 of a name): test items and the languages that have them, validation items likewise.
RHINE_MOUTH, RHINE_LENGTH = "82eeff68160d76619bf1739c46a7ea4068c136ae", "f5e6d568be8d0504ca1e03e60b00eae2df642ebd"
TOKYO_CAPITAL, TOKYO_OLYMPICS = "6d54aa744f5b7f51a712f6b752a1d08c13ceb934", "8ed69c614eb553cb8877a82a243dfb13729ccea0"
TOKYO_COUNTRY = "3cb96484df3b5fcdeedc445c9d6332b204ce6fdf"
BIRTHPLACE, WORKS = "d052d769f0a1a3c12fd054418c7f261075b5851b", "6d345660f3d83afe65202cb99e14ca5e9f8af139"
BIRTH_YEAR = "804a2c10a4b61be824422439070c0dd6154fea18"  # en and zh only
# Items per direction (en-x, then x-x): the ids both languages have.
EXPECTED_N = {("en", "en"): 5, ("en", "de"): 4, ("en", "zh"): 3, ("de", "de"): 4, ("zh", "zh"): 3}


@pytest.fixture(scope="module")
def mlqa():
    return dataset_registry.get("mlqa")


@pytest.fixture(scope="module")
def tables(mlqa):
    test, _ = data.prepare(data.load_local(FIXTURE, LANGS, mlqa), LANGS, mlqa)
    validation, _ = data.prepare(data.load_local(FIXTURE, LANGS, mlqa, "validation"), LANGS, mlqa, "validation")
    return test, validation


def test_registry_names_configs_splits_and_files(mlqa):
    xquad = dataset_registry.get("xquad")
    assert (xquad.hub_id, xquad.config_name("de"), xquad.evaluation_split) == ("google/xquad", "xquad.de", "validation")
    assert xquad.alignment == "parallel" and xquad.demonstration_split is None and len(xquad.languages) == 12
    assert (mlqa.hub_id, mlqa.config_name("de", "zh")) == ("facebook/mlqa", "mlqa.de.zh")
    assert (mlqa.evaluation_split, mlqa.demonstration_split, mlqa.alignment) == ("test", "validation", "by_direction")
    assert mlqa.languages == ("en", "ar", "de", "es", "hi", "vi", "zh")
    assert mlqa.local_file(FIXTURE, "validation", "de") == FIXTURE / "dev/dev-context-de-question-de.json"
    with pytest.raises(XmrcError, match="config key 'languages': el not in MLQA"):
        mlqa.check_languages(["en", "el"])
    with pytest.raises(XmrcError, match="unknown dataset 'squad'"):
        dataset_registry.get("squad")


def test_a_run_config_is_checked_against_its_dataset():
    import yaml

    from xmrc.config import validate_config

    def config(**overrides):
        base = yaml.safe_load((ROOT / "config/config.yaml").read_text())
        for key, value in yaml.safe_load((ROOT / "config/mlqa_smoke.yaml").read_text()).items():
            base[key] = {**base[key], **value} if isinstance(value, dict) else value
        for key, value in overrides.items():
            base[key] = {**base[key], **value} if isinstance(value, dict) else value
        return validate_config(base)

    assert dataset_registry.for_config(config()).key == "mlqa"
    assert (
        dataset_registry.for_config(validate_config(yaml.safe_load((ROOT / "config/config.yaml").read_text()))).key
        == "xquad"
    )
    for overrides, message in (
        ({"languages": ["en", "th"]}, "config key 'languages': th not in MLQA"),
        ({"oracle": {"enabled": True}}, "config key 'oracle.enabled': the oracle stage needs XQuAD"),
        ({"data": {"source": "hub", "hub_id": "google/xquad"}}, "config key 'data.hub_id': google/xquad is XQuAD's"),
        ({"data": {"dataset": "squad"}}, "config key 'data.dataset': unknown dataset 'squad'"),
    ):
        with pytest.raises(XmrcError, match=message):
            dataset_registry.for_config(config(**overrides))


def test_directions_hold_what_mlqas_cross_language_files_hold(mlqa, tables):
    """Direction c-q composed by id from the monolingual files = MLQA's test-context-c-question-q.json."""
    test, _ = tables
    by_lang = {lang: rows.set_index("id") for lang, rows in test.groupby("lang")}
    for context_lang in LANGS:
        for question_lang in LANGS:
            ids = dataset_registry.shared_ids(by_lang, context_lang, question_lang)
            composed = {
                (
                    i,
                    by_lang[context_lang].loc[i, "context"],
                    by_lang[question_lang].loc[i, "question"],
                    by_lang[context_lang].loc[i, "answer_text"],
                )
                for i in ids
            }
            path = FIXTURE / f"test/test-context-{context_lang}-question-{question_lang}.json"
            in_file = {
                (r["id"], r["context"], r["question"], r["answers"]["text"][0])
                for r in data.squad_records(path, "MLQA")
            }
            assert composed == in_file, (context_lang, question_lang)


def test_gaps_across_languages_are_allowed_but_duplicates_are_not(mlqa, tables):
    test, _ = tables
    assert test.groupby("lang", sort=False)["id"].count().to_dict() == {"en": 5, "de": 4, "zh": 3}
    with pytest.raises(XmrcError, match="XQuAD data: 3 not parallel"):
        data.prepare(test, LANGS)  # the same rows are fatal for a parallel dataset
    with pytest.raises(XmrcError, match="MLQA data: 1 duplicate id"):
        data.prepare(pd.concat([test, test.iloc[[0]]]), LANGS, mlqa)


def test_each_direction_uses_the_demonstrations_both_its_languages_have(tables):
    test, validation = tables
    prompts = build_prompt_table(
        test,
        LANGS,
        2,
        "v1",
        [BIRTHPLACE, BIRTH_YEAR, WORKS],
        None,
        alignment="by_direction",
        demonstration_table=validation,
    )
    n = prompts.groupby(["context_lang", "question_lang"], sort=False).size().to_dict()
    assert n == EXPECTED_N  # validation demonstrations exclude no test item
    first = prompts.drop_duplicates(["context_lang", "question_lang"]).set_index(["context_lang", "question_lang"])
    assert (
        "Answer: 1756" in first.loc[("en", "zh"), "prompt"]
        and "Answer: more than 600" not in first.loc[("en", "zh"), "prompt"]
    )
    assert (
        "Answer: more than 600" in first.loc[("en", "de"), "prompt"]
        and "Answer: 1756" not in first.loc[("en", "de"), "prompt"]
    )
    assert "Wo wurde Mozart geboren?" in first.loc[("en", "de"), "prompt"]
    # gold answers are the context language's
    assert set(prompts.loc[(prompts["context_lang"] == "zh"), "gold"]) == {"北海", "东京", "1964"}
    with pytest.raises(XmrcError, match=r"config key 'demonstrations': 1 of its ids .* both en and de; 2-shot"):
        build_prompt_table(
            test,
            LANGS,
            2,
            "v1",
            [BIRTHPLACE, BIRTH_YEAR],
            None,
            alignment="by_direction",
            demonstration_table=validation,
        )


def test_hub_path_builds_the_same_rows_as_the_local_files(mlqa, tables, monkeypatch):
    """The hub copy (MLQA's features: id, title, context, question, answers) goes through the row builder of
    the local files; only `datasets.load_dataset` is replaced, as nothing here reaches the hub."""
    requested = []

    def load_dataset(hub_id, config, split, revision):
        requested.append((hub_id, config, split))
        lang = config.split(".")[1]
        local = mlqa.local_file(FIXTURE, {"test": "test", "validation": "validation"}[split], lang)
        records = [
            {k: r[k] for k in ("id", "title", "context", "question", "answers")}
            for r in data.squad_records(local, "MLQA")
        ]
        return datasets.Dataset.from_list(records)

    monkeypatch.setattr(datasets, "load_dataset", load_dataset)
    test, validation = tables
    hub_test, _ = data.prepare(data.load_hub(None, LANGS, None, mlqa), LANGS, mlqa)
    hub_validation, _ = data.prepare(data.load_hub(None, LANGS, None, mlqa, "validation"), LANGS, mlqa)
    assert hub_test.equals(test) and hub_validation.equals(validation)
    assert requested[:3] == [("facebook/mlqa", f"mlqa.{lang}.{lang}", "test") for lang in LANGS]
    assert requested[3] == ("facebook/mlqa", "mlqa.en.en", "validation")


def test_data_command_checks_the_languages_against_the_dataset(tmp_path):
    result = xmrc(
        "data",
        "--dataset",
        "mlqa",
        "--source",
        "local",
        "--local-dir",
        FIXTURE,
        "--languages",
        "en",
        "el",
        "--out",
        tmp_path / "m.parquet",
        "--problems",
        tmp_path / "p.csv",
    )
    assert_one_line_error(result, "config key 'languages'", "el not in MLQA")
    result = xmrc(
        "data",
        "--dataset",
        "xquad",
        "--source",
        "local",
        "--local-dir",
        ROOT / "data/xquad_subset",
        "--languages",
        "en",
        "--split",
        "test",
        "--out",
        tmp_path / "x.parquet",
        "--problems",
        tmp_path / "p.csv",
    )
    assert_one_line_error(result, "no local file name for split 'test'", "xquad.local_files")
    result = xmrc(
        "prompts",
        "--data",
        tmp_path / "x.parquet",
        "--registry",
        ROOT / "config/models.yaml",
        "--model",
        "tiny-llama-chat",
        "--shots",
        0,
        "--format",
        "v1",
        "--demonstrations",
        BIRTHPLACE,
        "--demonstration-data",
        tmp_path / "d.parquet",
        "--out",
        tmp_path / "p.parquet",
    )
    assert_one_line_error(result, "--demonstration-data: only with --alignment by_direction")


def run(*argv):
    assert main([str(a) for a in argv]) == 0


def test_mlqa_runs_from_prompts_to_tables_with_n_per_direction(tiny_models, tmp_path):
    """data -> prompts (2-shot, validation demonstrations) -> generation (tiny model) -> scores -> tables."""
    registry, weights = ROOT / "config/models.yaml", tiny_models["llama-chat"]
    run(
        "data",
        "--dataset",
        "mlqa",
        "--source",
        "local",
        "--local-dir",
        FIXTURE,
        "--languages",
        *LANGS,
        "--out",
        tmp_path / "mlqa.parquet",
        "--problems",
        tmp_path / "problems.csv",
    )
    run(
        "data",
        "--dataset",
        "mlqa",
        "--split",
        "validation",
        "--source",
        "local",
        "--local-dir",
        FIXTURE,
        "--languages",
        *LANGS,
        "--out",
        tmp_path / "mlqa_demonstrations.parquet",
        "--problems",
        tmp_path / "demonstration_problems.csv",
    )
    common = [
        "--registry",
        registry,
        "--model",
        "tiny-llama-chat",
        "--weights",
        weights,
        "--shots",
        2,
        "--format",
        "v2",
    ]
    run(
        "prompts",
        "--data",
        tmp_path / "mlqa.parquet",
        *common,
        "--languages",
        *LANGS,
        "--demonstrations",
        BIRTHPLACE,
        WORKS,
        "--alignment",
        "by_direction",
        "--demonstration-data",
        tmp_path / "mlqa_demonstrations.parquet",
        "--out",
        tmp_path / "prompts.parquet",
    )
    run(
        "generate-job",
        "--prompts",
        tmp_path / "prompts.parquet",
        *common,
        "--max-new-tokens",
        4,
        "--dtype",
        "float32",
        "--out",
        tmp_path / "generations.parquet",
    )
    run("score", "--generations", tmp_path / "generations.parquet", "--out", tmp_path / "scores.parquet")
    run(
        "aggregate",
        "--scores",
        tmp_path / "scores.parquet",
        "--out-csv",
        tmp_path / "direction_scores.csv",
        "--out-items",
        tmp_path / "item_scores.parquet",
    )
    run("tables", "--direction-scores", tmp_path / "direction_scores.csv", "--out-dir", tmp_path / "tables")

    scores = pd.read_csv(tmp_path / "direction_scores.csv")
    assert {(r.context_lang, r.question_lang): r.n for r in scores.itertuples()} == EXPECTED_N
    assert scores["f1"].between(0, 100).all()
    items = read_parquet(tmp_path / "item_scores.parquet")
    assert set(items.loc[(items["context_lang"] == "zh"), "id"]) == {RHINE_MOUTH, TOKYO_CAPITAL, TOKYO_OLYMPICS}
    assert RHINE_LENGTH in set(items.loc[(items["question_lang"] == "de"), "id"])
    assert TOKYO_COUNTRY not in set(items.loc[(items["question_lang"] == "zh"), "id"])
    f1 = pd.read_csv(tmp_path / "tables/f1_2shot_en-x.csv")
    assert len(f1) == 1 and (tmp_path / "tables/summary_2shot.md").exists()
