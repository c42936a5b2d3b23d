"""Finetuning data: TULU-format validation and subsampling, the article split, question-translation pairs."""

import json
import subprocess
import sys

import pandas as pd
import pytest

from helpers import ROOT
from xmrc.exceptions import XmrcError
from xmrc.finetune import conversations, pairs
from xmrc.io import read_parquet

SAMPLE = ROOT / "data" / "tulu3_sample" / "tulu3_sample.jsonl"
DEMOS = ["d1", "d2"]


def turn(role, content="text"):
    return {"role": role, "content": content}


@pytest.mark.parametrize(
    "messages, problem",
    [
        ([turn("user"), turn("assistant")], None),
        ([turn("system"), turn("user"), turn("assistant"), turn("user"), turn("assistant")], None),
        ([], "no messages"),
        ([turn("assistant"), turn("user")], "turn 0: expected user, found assistant"),
        ([turn("user"), turn("user"), turn("assistant")], "turn 1: expected assistant, found user"),
        ([turn("user"), turn("assistant", "  \n")], "turn 1: empty assistant content"),
        ([turn("user"), turn("assistant"), turn("user")], "ends without an assistant turn"),
        ([turn("system")], "system turn only"),
        ([turn("user"), turn("tool"), turn("assistant")], "turn 1: unknown role 'tool'"),
        ([turn("user"), turn("assistant"), turn("system"), turn("assistant")], "turn 2: expected user, found system"),
        ([{"role": "user"}], "turn 0: not a {role, content} mapping"),
    ],
)
def test_conversation_problem(messages, problem):
    assert conversations.conversation_problem(messages) == problem


def test_shipped_sample_reports_its_two_malformed_conversations():
    kept, problems = conversations.split_valid(conversations.read_local(SAMPLE))
    assert len(kept) == 34
    assert dict(zip(problems["id"], problems["reason"])) == {
        "xmrc_sample_bad_order": "turn 0: expected user, found assistant",
        "xmrc_sample_bad_empty": "turn 1: empty assistant content",
    }
    assert set(kept["source"]) >= {"xmrc_authored_system", "xmrc_authored_multi_turn"}
    assert all(conversations.conversation_problem(m) is None for m in kept["messages"])


def test_subsample_is_seeded_and_keeps_order():
    table = pd.DataFrame({"id": [str(i) for i in range(50)]})
    first = conversations.subsample(table, 10, seed=3)
    assert list(first["id"]) == list(conversations.subsample(table, 10, seed=3)["id"])
    assert list(first["id"]) != list(conversations.subsample(table, 10, seed=4)["id"])
    assert [int(i) for i in first["id"]] == sorted(int(i) for i in first["id"])
    assert len(conversations.subsample(table, None, seed=0)) == 50


def test_tulu_command_writes_table_and_problem_report(tmp_path):
    out, problems = tmp_path / "tulu.parquet", tmp_path / "problems.csv"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "xmrc",
            "finetune-tulu",
            "--source",
            "local",
            "--local-file",
            str(SAMPLE),
            "--max-conversations",
            "20",
            "--seed",
            "1",
            "--out",
            str(out),
            "--problems",
            str(problems),
        ],
        capture_output=True,
        text=True,
        env=_env(),
    )
    assert result.returncode == 0, result.stderr
    assert "2 of 36 conversations malformed" in result.stderr
    table = read_parquet(out)
    assert len(table) == 20 and list(table.columns) == ["id", "source", "messages"]
    assert list(table["messages"][0][0].keys()) == ["role", "content"]
    assert len(pd.read_csv(problems)) == 2


def test_tulu_command_rejects_a_file_without_messages(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"prompt": "x"}) + "\n")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "xmrc",
            "finetune-tulu",
            "--source",
            "local",
            "--local-file",
            str(bad),
            "--out",
            str(tmp_path / "o.parquet"),
            "--problems",
            str(tmp_path / "p.csv"),
        ],
        capture_output=True,
        text=True,
        env=_env(),
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"xmrc: error: {bad}: every record needs a 'messages' field (TULU-3 / LLaMA-Factory messages format)"
    ]


def _xquad(articles):
    """A parallel XQuAD-like table: articles = {title: n_items}; the first article holds the demos."""
    rows = []
    for title, n in articles.items():
        for index in range(n):
            item = f"{title}-{index}"
            for lang in ("en", "de", "es", "zh"):
                rows.append(
                    {
                        "id": item,
                        "title": title,
                        "paragraph_index": 0,
                        "lang": lang,
                        "context": "c",
                        "question": f"{lang}:{item}?",
                        "answer_text": "a",
                        "answer_start": 0,
                    }
                )
    table = pd.DataFrame(rows)
    first = next(iter(articles))
    table.loc[table["id"] == f"{first}-0", "id"] = "d1"
    table.loc[table["id"] == f"{first}-1", "id"] = "d2"
    return table


def test_article_split_keeps_demonstrations_in_training_and_holds_out_whole_articles():
    table = _xquad({"Demo": 4, "A": 3, "B": 5, "C": 2, "D": 6})
    split = pairs.split_articles(table, 0.4, seed=0, demonstration_ids=DEMOS)
    assert split.set_index("title").loc["Demo", "split"] == "train"
    assert (split["split"] == "eval").sum() == 2  # ceil(0.4 * 5)
    assert split.equals(pairs.split_articles(table, 0.4, seed=0, demonstration_ids=DEMOS))
    ids = pairs.held_out_ids(table, split, DEMOS)
    eval_titles = set(split.loc[split["split"] == "eval", "title"])
    english = table[table["lang"] == "en"]
    assert set(ids) == set(english.loc[english["title"].isin(eval_titles), "id"])
    pool = pairs.xquad_pairs(table, split, ["zh", "de"], "en")
    assert not set(pool["id"]) & set(ids)  # no question of a held-out article is trained on, in any language
    train_items = set(english.loc[~english["title"].isin(eval_titles), "id"])
    assert set(pool["id"]) == train_items
    row = pool[(pool["id"] == "d1") & (pool["source_lang"] == "zh")].iloc[0]
    assert (row["source_text"], row["target_text"]) == ("zh:Demo-0?", "en:Demo-0?")


def test_split_never_holds_out_everything():
    table = _xquad({"Demo": 3, "A": 2})
    split = pairs.split_articles(table, 0.9, seed=0, demonstration_ids=[])
    assert sorted(split["split"]) == ["eval", "train"]


def test_pairs_are_capped_per_source_mixed_and_formatted():
    table = _xquad({"Demo": 4, "A": 10, "B": 10})
    split = pairs.split_articles(table, 0.3, seed=1, demonstration_ids=DEMOS)
    pool = pairs.xquad_pairs(table, split, ["zh", "es"], "en")
    result = pairs.build_pairs(pool, ["zh", "es"], "en", max_per_source=5, seed=0)
    assert result["source_lang"].value_counts().to_dict() == {"zh": 5, "es": 5}
    assert list(result["source_lang"]) != sorted(result["source_lang"])  # shuffled into a mixture
    first = result.iloc[0]
    assert first["messages"] == [
        {"role": "user", "content": f"Translate the following question into English.\n{first['source_text']}"},
        {"role": "assistant", "content": first["target_text"]},
    ]
    assert conversations.conversation_problem(first["messages"]) is None


def test_external_pairs_are_read_and_validated(tmp_path):
    good = tmp_path / "pairs.jsonl"
    good.write_text(
        "".join(
            json.dumps(
                {
                    "source_lang": "de",
                    "target_lang": "en",
                    "source_text": f"Frage {i}?",
                    "target_text": f"Question {i}?",
                }
            )
            + "\n"
            for i in range(4)
        )
    )
    external = pairs.read_external(good)
    assert list(external["origin"].unique()) == ["pairs.jsonl"] and len(external) == 4
    assert len(pairs.build_pairs(external, ["de"], "en", None, seed=0)) == 4
    with pytest.raises(XmrcError, match="no es->en pairs"):
        pairs.build_pairs(external, ["de", "es"], "en", None, seed=0)
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"source_lang": "de", "source_text": "x"}) + "\n")
    with pytest.raises(XmrcError, match="missing column"):
        pairs.read_external(bad)


def test_prompts_restricted_to_ids():
    from xmrc.prompts import build_prompt_table

    table = _xquad({"Demo": 4, "A": 3, "B": 3})
    table = table.assign(question=table["question"], context=table["context"])
    wanted = ["B-0", "B-2"]
    prompts = build_prompt_table(table, ["en", "de"], 2, "v1", DEMOS, None, None, wanted)
    assert set(prompts["id"]) == set(wanted)
    assert len(build_prompt_table(table, ["en", "de"], 2, "v1", DEMOS, None, 1, wanted)["id"].unique()) == 1


def _env():
    import os

    return dict(os.environ, PYTHONPATH=str(ROOT / "src"))


def test_bad_train_config_and_registry_entries_are_one_line_errors(tmp_path):
    bad = tmp_path / "train.yaml"
    bad.write_text("a: [\n")
    result = subprocess.run(
        [sys.executable, "-m", "xmrc", "finetune-train", "--train-config", str(bad), "--out", str(tmp_path / "out")],
        capture_output=True,
        text=True,
        env=_env(),
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [f"xmrc: error: {bad}: not valid YAML (line 2)"]

    from xmrc.config import Registry

    registry = tmp_path / "models.yaml"
    entry = {
        "name": "T",
        "source": "finetune",
        "family": "x",
        "mode": "chat",
        "chat_template": True,
        "gpus": 1,
        "backend": "local",
    }
    registry.write_text(json.dumps({"tuned": entry}))
    with pytest.raises(XmrcError, match="'finetune' is a required property"):
        Registry.load(registry)
    registry.write_text(
        json.dumps(
            {
                "tuned": dict(
                    entry,
                    finetune={"method": "lora", "base": "b", "dataset": "question_translation", "template": "llama3"},
                )
            }
        )
    )
    with pytest.raises(XmrcError, match="'sources' is a required property"):
        Registry.load(registry)
