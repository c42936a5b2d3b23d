import json
import shutil

import datasets
import pytest

from helpers import ROOT
from xmrc import LANGUAGES, data
from xmrc.exceptions import XmrcError

SUBSET = ROOT / "data/xquad_subset"


@pytest.fixture(scope="module")
def subset():
    return data.load_local(SUBSET, LANGUAGES)


def test_subset_is_parallel_and_complete(subset):
    table, problems = data.prepare(subset, LANGUAGES)
    assert list(table.columns) == data.COLUMNS
    assert problems == []
    assert table.groupby("lang")["id"].apply(frozenset).nunique() == 1
    assert table["id"].nunique() == 50
    assert list(dict.fromkeys(table["lang"])) == list(LANGUAGES)
    assert set(table["title"]) == {"Normans", "Computational_complexity_theory", "Teacher"}
    first = table[(table["lang"] == "en") & (table["id"] == "56dde1d966d3e219004dad8d")].iloc[0]
    assert (first["paragraph_index"], first["answer_text"]) == (0, "Rollo")
    assert first["context"][first["answer_start"] :].startswith("Rollo")


def test_answer_offsets_are_reported_by_id(subset):
    broken = subset.copy()
    row = broken.index[(broken["lang"] == "de")][3]
    broken.loc[row, "answer_start"] += 1
    gone = broken.index[(broken["lang"] == "th")][0]
    broken.loc[gone, "answer_text"] = "not in this context at all"
    table, problems = data.prepare(broken, LANGUAGES)
    assert len(table) == len(subset)  # reported, not dropped
    kinds = {(p.id, p.lang, p.kind) for p in problems}
    assert (broken.loc[row, "id"], "de", "answer_not_at_start") in kinds
    assert (broken.loc[gone, "id"], "th", "answer_not_in_context") in kinds


def test_non_parallel_ids_stop_with_one_line(subset):
    missing_id = subset.loc[subset["lang"] == "ru", "id"].iloc[5]
    broken = subset.drop(subset.index[(subset["lang"] == "ru") & (subset["id"] == missing_id)])
    with pytest.raises(XmrcError) as raised:
        data.prepare(broken, LANGUAGES)
    assert missing_id in str(raised.value) and "missing in ru" in str(raised.value)
    assert "\n" not in str(raised.value)


def test_missing_language_and_missing_file(tmp_path, subset):
    with pytest.raises(XmrcError, match="no rows for language"):
        data.prepare(subset[subset["lang"] != "el"], LANGUAGES)
    shutil.copy(SUBSET / "xquad.en.json", tmp_path / "xquad.en.json")
    with pytest.raises(XmrcError, match=r"xquad\.de\.json: XQuAD file not found"):
        data.load_local(tmp_path, ["en", "de"])


def test_malformed_json_names_the_file(tmp_path):
    (tmp_path / "xquad.en.json").write_text("{not json")
    with pytest.raises(XmrcError, match=r"xquad.en.json: not valid JSON"):
        data.load_local(tmp_path, ["en"])
    (tmp_path / "xquad.en.json").write_text(
        json.dumps({"data": [{"title": "T", "paragraphs": [{"context": "c", "qas": [{"id": "q1", "question": "?"}]}]}]})
    )
    with pytest.raises(XmrcError, match=r"not in SQuAD v1.1 layout"):
        data.load_local(tmp_path, ["en"])


def test_hub_layout_gets_titles_from_the_packaged_map(subset):
    english = subset[subset["lang"] == "en"]
    records = datasets.Dataset.from_list(
        [
            {
                "id": r.id,
                "context": r.context,
                "question": r.question,
                "answers": {"text": [r.answer_text], "answer_start": [r.answer_start]},
            }
            for r in english.itertuples()
        ]
    )
    rows = data.rows_from_hub_records(records, "en")
    assert list(rows.columns) == data.COLUMNS
    assert rows.drop(columns=[]).reset_index(drop=True).equals(english.reset_index(drop=True))


def test_article_map_covers_all_xquad_items():
    mapping = data.article_map()
    assert len(mapping) == 1190 and mapping["id"].is_unique and mapping["title"].nunique() == 48
