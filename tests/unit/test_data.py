import gzip
import hashlib
import json
import lzma
import re
import shutil
from pathlib import Path

import datasets
import pytest
from snakemake.utils import update_config

from helpers import ROOT
from xmrc import LANGUAGES, data, dataset_registry
from xmrc.config import validate_config
from xmrc.exceptions import XmrcError
from xmrc.io import read_yaml

SUBSET = ROOT / "data/xquad_subset"
FULL = ROOT / "data/xquad"  # the whole XQuAD, xz-compressed originals


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


@pytest.fixture(scope="module")
def full():
    return data.load_local(FULL, LANGUAGES)


def test_full_xquad_is_bundled_compressed_and_complete(full):
    xquad = dataset_registry.get("xquad")
    assert [xquad.local_file(FULL, "validation", lang).name for lang in LANGUAGES] == [
        f"xquad.{lang}.json.xz" for lang in LANGUAGES
    ]
    table, problems = data.prepare(full, LANGUAGES)
    assert problems == []
    ids = table.groupby("lang")["id"].apply(frozenset)
    assert ids.nunique() == 1 and len(ids) == 12 and table.groupby("lang").size().eq(1190).all()
    assert table.drop_duplicates(["title", "paragraph_index"]).shape[0] == 240
    assert table["title"].nunique() == 48
    mapped = data.article_map().set_index("id").sort_index()
    for _, group in table.groupby("lang"):
        assert group.set_index("id")[["title", "paragraph_index"]].sort_index().equals(mapped)


def test_bundled_files_are_the_originals_byte_for_byte():
    """The SHA-256 of every original file, as data/xquad/README.md records them, of the decompressed files."""
    readme = (FULL / "README.md").read_text(encoding="utf-8")
    recorded = {name: digest for digest, name in re.findall(r"^([0-9a-f]{64})  (xquad\.\w\w\.json)$", readme, re.M)}
    assert sorted(recorded) == sorted(f"xquad.{lang}.json" for lang in LANGUAGES)
    for name, digest in recorded.items():
        assert hashlib.sha256(lzma.decompress((FULL / f"{name}.xz").read_bytes())).hexdigest() == digest, name
    assert "Creative Commons Attribution-ShareAlike 4.0" in (FULL / "LICENSE.txt").read_text()


def test_subset_is_the_full_data_cut_to_three_articles(full, subset):
    cut = full[full["title"].isin(set(subset["title"]))].reset_index(drop=True)
    assert cut.equals(subset)


def test_compressed_files_are_read_and_damaged_ones_named(tmp_path):
    original = (SUBSET / "xquad.en.json").read_bytes()
    expected = data.load_local(SUBSET, ["en"])
    (tmp_path / "xquad.en.json.gz").write_bytes(gzip.compress(original))
    assert data.load_local(tmp_path, ["en"]).equals(expected)
    (tmp_path / "xquad.en.json").write_text("{not json")  # the plain file, where there is one, comes first
    with pytest.raises(XmrcError, match=r"xquad\.en\.json: not valid JSON"):
        data.load_local(tmp_path, ["en"])
    (tmp_path / "xquad.en.json").unlink()
    (tmp_path / "xquad.en.json.gz").write_bytes(b"not gzip")
    with pytest.raises(XmrcError, match=r"xquad\.en\.json\.gz: damaged gz file"):
        data.load_local(tmp_path, ["en"])
    (tmp_path / "xquad.en.json.gz").unlink()
    (tmp_path / "xquad.en.json.xz").write_bytes(lzma.compress(original)[:-100])  # truncated
    with pytest.raises(XmrcError) as raised:
        data.load_local(tmp_path, ["en"])
    message = str(raised.value)
    assert message.startswith(f"{tmp_path / 'xquad.en.json.xz'}: damaged xz file (") and "\n" not in message


def test_full_config_reads_the_bundled_files(monkeypatch):
    """config/xquad_full.yaml merged over the paper config, as `snakemake --configfile` merges it."""
    monkeypatch.chdir(ROOT)
    config = read_yaml(ROOT / "config/config.yaml")
    update_config(config, read_yaml(ROOT / "config/xquad_full.yaml"))
    config = validate_config(config, "config/config.yaml + config/xquad_full.yaml")
    assert (config["data"]["source"], config["data"]["local_dir"], config["data"]["max_items"]) == (
        "local",
        "data/xquad",
        None,
    )
    xquad = dataset_registry.for_config(config)
    assert xquad.local_file(config["data"]["local_dir"], "validation", "th") == Path("data/xquad/xquad.th.json.xz")
