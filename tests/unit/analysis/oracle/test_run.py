import pandas as pd
import pytest

from helpers.jobs import killed_then_resumed
from xmrc.analysis.oracle.run import chosen_format, run_oracle, sample_ids, work_items
from xmrc.exceptions import XmrcError
from xmrc.io import read_parquet


def test_sample_is_seeded_ordered_and_complete_when_large():
    ids = [f"q{i}" for i in range(50)]
    sample = sample_ids(ids, 10, seed=3)
    assert len(sample) == 10 and sample == sorted(sample, key=ids.index)
    assert sample == sample_ids(list(reversed(ids)), 10, seed=3)[::-1]  # independent of table order
    assert sample != sample_ids(ids, 10, seed=4)
    assert sample_ids(ids, None, 0) == ids and sample_ids(ids, 80, 0) == ids


def test_chosen_format_reads_the_summary():
    summary = pd.DataFrame({"model": ["A", "B"], "prompt_format": ["v2", "v1"]})
    assert chosen_format(summary, "A", "s.csv") == "v2"
    with pytest.raises(XmrcError, match=r"s.csv: no row for model 'C'"):
        chosen_format(summary, "C", "s.csv")
    with pytest.raises(XmrcError, match="needs columns"):
        chosen_format(summary.drop(columns="prompt_format"), "A", "s.csv")


def tables(context="One. Two."):
    prompt = f"Task\nContext: {context}\nQuestion: q"
    start = prompt.index(context)
    prompts = pd.DataFrame(
        [
            {
                "id": i,
                "context_lang": "en",
                "question_lang": q,
                "prompt": prompt,
                "templated": True,
                "context_start": start,
                "context_end": start + len(context),
            }
            for q in ("en", "de")
            for i in ("a", "b", "c")
        ]
    )
    generations = prompts[["id", "context_lang", "question_lang"]].assign(raw_output=" Two", prediction="Two")
    units = pd.DataFrame(
        [
            {"id": i, "lang": "en", "unit": u, "start": s, "end": e, "is_gold": u == 1, "sentences": 1}
            for i in ("a", "b", "c")
            for u, (s, e) in enumerate([(0, 5), (5, 9)])
        ]
    )
    return prompts, generations, units


def test_work_items_use_the_same_ids_in_every_direction():
    prompts, generations, units = tables()
    items = work_items(prompts, generations, units, ["en", "de"], 2, seed=0)
    by_direction = {q: [i.id for i in items if i.question_lang == q] for q in ("en", "de")}
    assert len(by_direction["en"]) == 2 and by_direction["en"] == by_direction["de"]
    assert all(i.units == ((0, 5), (5, 9)) and i.gold_unit == 1 for i in items)


def test_work_items_name_what_is_missing():
    prompts, generations, units = tables()
    with pytest.raises(XmrcError, match="en-zh"):
        work_items(prompts, generations, units, ["en", "zh"], None, 0)
    with pytest.raises(XmrcError, match="do not cover the prompt's context"):
        work_items(prompts, generations, units.assign(end=units["end"] - 1), ["en"], None, 0)
    with pytest.raises(XmrcError, match="no units for item a"):
        work_items(prompts, generations, units[units["id"] != "a"], ["en"], None, 0)


def test_oracle_job_killed_after_a_chunk_resumes_through_the_checkpoint_loop(tiny_models, tmp_path, monkeypatch):
    from xmrc.analysis.layers.inputs import load_model

    model, tokenizer = load_model(str(tiny_models["llama-chat"]), dtype="float32")
    items = work_items(*tables(), ["en", "de"], None, seed=0)
    options = dict(
        base={"model": "Tiny", "shots": 2, "prompt_format": "v1"},
        implementation="batched",
        batch_size=4,
        max_new_tokens=4,
        generation_batch_size=2,
        chunk_size=2,
        progress=False,
    )
    reference = run_oracle(items, model, tokenizer, tmp_path / "ref.parquet", **options)
    out = tmp_path / "oracle.parquet"
    result, computed = killed_then_resumed(
        monkeypatch, "xmrc.analysis.oracle.run", out, lambda: run_oracle(items, model, tokenizer, out, **options)
    )
    assert computed == [2, 2]  # the first chunk came from its shard
    assert (result["status"] == "ok").all()
    timing = ["seconds"]  # the only column that differs between runs
    pd.testing.assert_frame_equal(result.drop(columns=timing), reference.drop(columns=timing))
    pd.testing.assert_frame_equal(read_parquet(out).drop(columns=timing), result.drop(columns=timing))
