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


# --- The Sequence target under protocol.oracle_sequence: eos ---------------------------------------------

MAX_NEW_TOKENS = 8


def ragged_items() -> list:
    """Work items whose prompts differ in length (a regeneration batch of them is left-padded)."""
    from xmrc.analysis.oracle.run import WorkItem

    contexts = [
        "One. Two.",
        "The Normans were the people. They gave their name to Normandy. Paris is the capital of France.",
    ]
    items = []
    for number, context in enumerate(contexts):
        prompt = f"Task\nContext: {context}\nQuestion: q"
        start = prompt.index(context)
        cut = context.index(". ") + 2
        units = ((0, cut), (cut, len(context)))
        items.append(
            WorkItem(f"q{number}", "en", "en", prompt, True, start, start + len(context), "", "", units, 0, False)
        )
    return items


def stopping_model(tiny_models, pad_is_stop: bool):
    """Tiny Llama chat whose generation config also stops at a token it writes third for one prompt only, so the
    rows of a regeneration batch end at different steps (a random model never writes its real EOS). With
    `pad_is_stop` that token is the tokenizer's pad too (pad id = eos id, as for Qwen-2.5 base)."""
    from xmrc.analysis.layers.inputs import load_model
    from xmrc.analysis.oracle.regeneration import TargetRule, generate_ids

    model, tokenizer = load_model(str(tiny_models["llama-chat"]), dtype="float32")
    prompts = [item.prompt for item in ragged_items()]
    free = generate_ids(model, tokenizer, prompts, True, MAX_NEW_TOKENS, 1, TargetRule(sequence="eos"))
    early = {token for ids in free[1:] for token in ids[:3]} | {ids[0] for ids in free} | {ids[1] for ids in free}
    stop = next(token for token in free[0][2:] if token not in early)
    stops = model.generation_config.eos_token_id
    model.generation_config.eos_token_id = [*(stops if isinstance(stops, list) else [stops]), stop]
    if pad_is_stop:
        tokenizer.pad_token = tokenizer.convert_ids_to_tokens(stop)
    return model, tokenizer, stop


def stored(items, model, tokenizer, rule) -> list:
    """The items with the answers the generation stage would store (each prompt generated alone)."""
    from dataclasses import replace

    from xmrc.analysis.oracle.regeneration import generate_ids
    from xmrc.extract import extract_answer

    ids = generate_ids(model, tokenizer, [i.prompt for i in items], True, MAX_NEW_TOKENS, 1, rule)
    texts = [tokenizer.decode(g, skip_special_tokens=True) for g in ids]
    return [replace(i, raw_output=t, prediction=extract_answer(t, rule.extraction)) for i, t in zip(items, texts)]


@pytest.mark.parametrize("pad_is_stop", [False, True], ids=["pad-apart", "pad-is-eos"])
def test_eos_sequence_target_ends_at_the_first_eos_whatever_the_regeneration_batch(tiny_models, pad_is_stop):
    from xmrc.analysis.oracle.ablation import BatchedAblation, encode
    from xmrc.analysis.oracle.regeneration import TargetRule
    from xmrc.analysis.oracle.run import attribute_items
    from xmrc.backends.hf import generate_until

    model, tokenizer, stop = stopping_model(tiny_models, pad_is_stop)
    rule = TargetRule(sequence="eos")
    items = stored(ragged_items(), model, tokenizer, rule)
    encoded = [encode(tokenizer, item.prompt, True) for item in items]
    batched = generate_until(model, tokenizer, encoded, MAX_NEW_TOKENS, len(items))[0].tolist()
    assert len(batched) > batched.index(stop) + 1  # the batch did pad the row that stopped first
    evaluator = BatchedAblation(model, tokenizer, batch_size=4)
    base = {"model": "Tiny", "shots": 2, "prompt_format": "v1", "implementation": "batched"}
    alone, together = (
        attribute_items(items, model, tokenizer, evaluator, base, MAX_NEW_TOKENS, size, rule) for size in (1, 2)
    )
    for one, many in zip(alone, together):
        assert one["status"] == many["status"] == "ok" and one["target_source"] == "regenerated"
        assert many["target_ids"] == one["target_ids"]
        assert many["step_attr"] == one["step_attr"] and many["sequence_attr"] == one["sequence_attr"]
    assert together[0]["target_ids"][-1] == stop and stop not in together[0]["target_ids"][:-1]


def test_eos_fallback_continues_the_stored_output_to_eos_instead_of_retokenising_it(tiny_models):
    from dataclasses import replace

    from xmrc.analysis.oracle.ablation import BatchedAblation
    from xmrc.analysis.oracle.regeneration import TargetRule, generate_ids
    from xmrc.analysis.oracle.run import attribute_items

    model, tokenizer, _ = stopping_model(tiny_models, False)
    rule = TargetRule(sequence="eos")
    items = stored(ragged_items(), model, tokenizer, rule)[1:2]
    free = generate_ids(model, tokenizer, [items[0].prompt], True, MAX_NEW_TOKENS, 1, rule)[0]
    # A stored answer the regeneration does not reproduce: the generation stage's output stopped early (two
    # tokens that survive decoding and tokenising again).
    head = tokenizer.decode(free[:2], skip_special_tokens=True)
    assert tokenizer(head, add_special_tokens=False)["input_ids"] == free[:2]
    items = [replace(items[0], raw_output=head, prediction=head)]
    evaluator = BatchedAblation(model, tokenizer, batch_size=4)
    base = {"model": "Tiny", "shots": 2, "prompt_format": "v1", "implementation": "batched"}
    (row,) = attribute_items(items, model, tokenizer, evaluator, base, MAX_NEW_TOKENS, 1, rule)
    assert row["status"] == "ok" and row["target_source"] == "continued"
    assert row["target_ids"] == free and len(free) > 2  # greedy from the stored head: the free generation
    assert row["answer_token"] == 0
