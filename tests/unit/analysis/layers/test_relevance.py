"""AttnLRP relevance and pooled hidden states on tiny random models (real transformers, real LXT)."""

import json

import numpy as np
import pandas as pd
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("lxt")

from helpers.jobs import killed_then_resumed, rewrite_shard, shards_kept  # noqa: E402
from helpers.layers_prompts import TESTS, prompt_rows  # noqa: E402
from xmrc.analysis.layers.answer_start import answer_start  # noqa: E402
from xmrc.analysis.layers.hidden_states import pooled_hidden_states, run_hidden_states  # noqa: E402
from xmrc.analysis.layers.inputs import (  # noqa: E402
    LAYER_CODE_VERSION,
    ExtractionJob,
    encode,
    encode_to_answer,
    load_model,
)
from xmrc.analysis.layers.mrd import major_relevance_depths, part_mrds  # noqa: E402
from xmrc.analysis.layers.relevance import (  # noqa: E402
    RELEVANCE_COLUMNS,
    TOKEN_COLUMNS,
    attnlrp_rules,
    layer_relevance,
    part_records,
    run_relevance,
)
from xmrc.exceptions import XmrcError  # noqa: E402
from xmrc.extract import extract_answer  # noqa: E402
from xmrc.io import read_parquet  # noqa: E402


def two_shot_v1_job(model_key: str = "m", batch_size: int = 2, **options) -> ExtractionJob:
    """The extraction job of most tests here: 2-shot v1, no progress bar."""
    return ExtractionJob(model_key, 2, "v1", batch_size=batch_size, progress=False, **options)


@pytest.fixture(scope="module")
def llama(tiny_models):
    return load_model(str(tiny_models["llama-chat"]), dtype="float32")


@pytest.fixture(scope="module")
def deep_llama(tiny_models, tmp_path_factory):
    """The tiny Llama's tokenizer with six random layers, so that MRD has depths to choose from."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    source = tiny_models["llama-base"]
    config = AutoConfig.from_pretrained(source)
    config.num_hidden_layers = 6
    torch.manual_seed(0)
    out = tmp_path_factory.mktemp("deep_llama")
    AutoModelForCausalLM.from_config(config).save_pretrained(out)
    AutoTokenizer.from_pretrained(source).save_pretrained(out)
    return load_model(str(out), dtype="float32")


def test_parts_map_to_their_tokens(llama):
    _, tokenizer = llama
    row = prompt_rows(tokenizer, chat=True).iloc[0]
    encoded = encode(tokenizer, row)
    question = tokenizer.decode([t for t, keep in zip(encoded.input_ids, encoded.parts["question"]) if keep])
    context = tokenizer.decode([t for t, keep in zip(encoded.input_ids, encoded.parts["context"]) if keep])
    assert row["prompt"][row["question_start"] : row["question_end"]] in question
    assert TESTS[0][0] in context and TESTS[0][1] not in context
    assert not (encoded.parts["question"] & encoded.parts["context"]).any()
    assert encoded.parts["demonstrations"].sum() > encoded.parts["question"].sum()
    assert not any(mask[0] for mask in encoded.parts.values())  # BOS belongs to no part


def test_lrp_relevance_differs_from_gradient_times_input(llama):
    model, tokenizer = llama
    batch = [encode(tokenizer, row) for _, row in prompt_rows(tokenizer, chat=True).iterrows()]
    plain = layer_relevance(model, batch, tokenizer.pad_token_id, lrp=False)
    lrp = layer_relevance(model, batch, tokenizer.pad_token_id, lrp=True)
    plain_again = layer_relevance(model, batch, tokenizer.pad_token_id, lrp=False)
    for a, b, c in zip(plain, lrp, plain_again):
        assert a.target_id == b.target_id and a.target_logit == pytest.approx(b.target_logit)  # same forward
        assert a.relevance.shape == b.relevance.shape and a.relevance.shape[0] == 2  # embeddings + layer 1
        # the LRP rules change the backward pass, so the relevance differs clearly from gradient x input
        assert not np.allclose(a.relevance, b.relevance, rtol=0.05, atol=1e-3)
        # and leaving the context restores the unpatched model exactly
        np.testing.assert_array_equal(a.relevance, c.relevance)


@pytest.mark.parametrize("variant", ["attnlrp", "cp-lrp"])
def test_patches_are_undone(variant):
    import torch.nn
    from transformers.models.llama import modeling_llama

    def state():
        return (
            torch.nn.Dropout.forward,
            modeling_llama.LlamaMLP.forward,
            modeling_llama.LlamaRMSNorm.forward,
            modeling_llama.eager_attention_forward,
            modeling_llama.ALL_ATTENTION_FUNCTIONS,
            *dict(modeling_llama.ALL_ATTENTION_FUNCTIONS.items()).values(),  # CP-LRP wraps them in place
        )

    before = state()

    class Probe(modeling_llama.LlamaForCausalLM):
        pass

    Probe.__module__ = modeling_llama.__name__
    with attnlrp_rules(Probe.__new__(Probe), variant):
        assert modeling_llama.LlamaMLP.forward is not before[1]
        assert modeling_llama.ALL_ATTENTION_FUNCTIONS["sdpa"] is not before[4]["sdpa"]
    after = state()
    assert len(before) == len(after) and all(x is y for x, y in zip(before, after))


def test_batching_does_not_change_relevance(llama):
    model, tokenizer = llama
    batch = [encode(tokenizer, row) for _, row in prompt_rows(tokenizer, chat=True).iterrows()]
    together = layer_relevance(model, batch, tokenizer.pad_token_id)
    for item, result in zip(batch, together):
        alone = layer_relevance(model, [item], tokenizer.pad_token_id)[0]
        np.testing.assert_allclose(result.relevance, alone.relevance, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("name", ["mistral-base", "gemma2-chat"])
def test_architectures_without_lxt_rules_fail_clearly(tiny_models, name):
    model, tokenizer = load_model(str(tiny_models[name]), dtype="float32")
    row = prompt_rows(tokenizer, chat=False).iloc[0]
    with pytest.raises(XmrcError, match=r"LXT 2.1 has no AttnLRP rules .*supported: .*llama"):
        layer_relevance(model, [encode(tokenizer, row)], tokenizer.pad_token_id)


def test_qwen2_is_supported(tiny_models):
    model, tokenizer = load_model(str(tiny_models["qwen2-chat"]), dtype="float32")
    row = prompt_rows(tokenizer, chat=True).iloc[0]
    result = layer_relevance(model, [encode(tokenizer, row)], tokenizer.pad_token_id)[0]
    assert np.isfinite(result.relevance).all() and np.abs(result.relevance).sum() > 0


def test_mrd_records_on_a_deeper_model(deep_llama):
    model, tokenizer = deep_llama
    rows = prompt_rows(tokenizer, chat=False)
    encoded = encode(tokenizer, rows.iloc[2])
    result = layer_relevance(model, [encoded], tokenizer.pad_token_id)[0]
    assert result.relevance.shape[0] == 6  # embeddings + outputs of layers 1..5: N = 5
    records = {r["part"]: r for r in part_records(result, encoded)}
    assert set(records) == {"task_description", "demonstrations", "context", "question"}
    for record in records.values():
        assert record["layers"] == 5 and 1 <= record["mrd"] <= 5 and len(record["relevance"]) == 5
    depths = major_relevance_depths(np.abs(result.relevance[1:]))
    assert len(set(depths.tolist())) > 1  # depth varies across tokens: the MRD has something to measure
    expected = part_mrds(np.abs(result.relevance[1:]), encoded.parts)
    assert {part: record["mrd"] for part, record in records.items()} == expected
    assert records["question"]["n_tokens"] == int(encoded.parts["question"].sum())


def test_run_relevance_resumes_from_shards(deep_llama, tmp_path, monkeypatch):
    model, tokenizer = deep_llama
    rows = prompt_rows(tokenizer, chat=False)
    out = tmp_path / "relevance.parquet"
    first = run_relevance(
        rows,
        model,
        tokenizer,
        out,
        two_shot_v1_job("deep", chunk_size=2),
    )
    assert list(first.columns) == RELEVANCE_COLUMNS and len(first) == 3 * 4
    shard_dir = out.with_name(out.name + ".shards")
    assert not shard_dir.exists()

    def killed_after_first_shard():
        """The shard folder as a job killed after its first shard leaves it (marked, to tell it apart)."""
        with shards_kept(monkeypatch):
            run_relevance(
                rows,
                model,
                tokenizer,
                out,
                two_shot_v1_job("deep", chunk_size=2, settings={"dtype": "float32"}),
            )
        rewrite_shard(shard_dir / "shard-00000.parquet", first.iloc[:8].assign(target_token="from-shard"))
        (shard_dir / "shard-00001.parquet").unlink()
        out.unlink()

    killed_after_first_shard()  # the same job again: keeps the shard and computes only the missing one
    # the layer code version is part of the job: shards of older code (another explained token) are not its own
    assert json.loads((shard_dir / "manifest.json").read_text())["settings"]["code"] == LAYER_CODE_VERSION
    second = run_relevance(
        rows,
        model,
        tokenizer,
        out,
        two_shot_v1_job("deep", chunk_size=2, settings={"dtype": "float32"}),
    )
    assert (second["target_token"].iloc[:8] == "from-shard").all()
    assert (second["target_token"].iloc[8:] != "from-shard").all()
    pd.testing.assert_frame_equal(second.drop(columns="target_token"), first.drop(columns="target_token"))
    killed_after_first_shard()  # another setting: the shard is not its own
    third = run_relevance(
        rows,
        model,
        tokenizer,
        out,
        two_shot_v1_job("deep", chunk_size=2, settings={"dtype": "bfloat16"}),
    )
    assert (third["target_token"] != "from-shard").all()


def test_relevance_job_killed_after_a_chunk_resumes_through_the_checkpoint_loop(deep_llama, tmp_path, monkeypatch):
    model, tokenizer = deep_llama
    rows = prompt_rows(tokenizer, chat=False)
    options = dict(
        job=two_shot_v1_job("deep", chunk_size=2),
        examples=1,
    )
    reference = run_relevance(
        rows, model, tokenizer, tmp_path / "ref.parquet", tokens_output=tmp_path / "ref.tokens.parquet", **options
    )
    out, tokens = tmp_path / "relevance.parquet", tmp_path / "relevance.tokens.parquet"
    result, computed = killed_then_resumed(
        monkeypatch,
        "xmrc.analysis.layers.inputs",  # ExtractionJob.run calls run_sharded there
        out,
        lambda: run_relevance(rows, model, tokenizer, out, tokens_output=tokens, **options),
    )
    assert computed == [1]  # the first chunk (2 prompts) came from its shard
    pd.testing.assert_frame_equal(result, reference)
    pd.testing.assert_frame_equal(read_parquet(out), read_parquet(tmp_path / "ref.parquet"))
    pd.testing.assert_frame_equal(read_parquet(tokens), read_parquet(tmp_path / "ref.tokens.parquet"))


def test_hidden_states_job_killed_after_a_chunk_resumes_through_the_checkpoint_loop(llama, tmp_path, monkeypatch):
    model, tokenizer = llama
    rows = prompt_rows(tokenizer, chat=True)
    job = two_shot_v1_job(chunk_size=2)
    reference = run_hidden_states(rows, model, tokenizer, tmp_path / "ref.npy", tmp_path / "ref.parquet", job)
    vectors, index = tmp_path / "h.npy", tmp_path / "h.parquet"
    result, computed = killed_then_resumed(
        monkeypatch,
        "xmrc.analysis.layers.inputs",
        vectors,
        lambda: run_hidden_states(rows, model, tokenizer, vectors, index, job),
    )
    assert computed == [1] and result == reference
    assert vectors.read_bytes() == (tmp_path / "ref.npy").read_bytes()
    pd.testing.assert_frame_equal(read_parquet(index), read_parquet(tmp_path / "ref.parquet"))


def test_pooled_hidden_states(llama, tmp_path):
    model, tokenizer = llama
    rows = prompt_rows(tokenizer, chat=True)
    batch = [encode_to_answer(tokenizer, row)[0] for _, row in rows.iterrows()]
    pooled = pooled_hidden_states(model, batch, tokenizer.pad_token_id)
    layers, width = model.config.num_hidden_layers, model.config.hidden_size
    assert pooled.shape == (3, layers + 1, 3, width) and pooled.dtype == np.float16
    item = batch[1]
    with torch.no_grad():
        states = model(torch.tensor([item.input_ids]), output_hidden_states=True).hidden_states
    embeddings, first_layer = states[0][0].numpy(), states[1][0].numpy()
    np.testing.assert_allclose(pooled[1, 0, 2], embeddings[-1], rtol=2e-3, atol=2e-3)  # last token, layer 0
    np.testing.assert_allclose(pooled[1, 1, 0], first_layer[item.parts["question"]].mean(0), rtol=2e-3, atol=2e-3)
    np.testing.assert_allclose(pooled[1, 1, 1], first_layer[item.parts["context"]].mean(0), rtol=2e-3, atol=2e-3)
    alone = pooled_hidden_states(model, [item], tokenizer.pad_token_id)
    np.testing.assert_allclose(alone[0].astype(np.float32), pooled[1].astype(np.float32), rtol=1e-2, atol=1e-3)

    vectors, index = tmp_path / "h.npy", tmp_path / "h.parquet"
    count, shape = run_hidden_states(
        rows,
        model,
        tokenizer,
        vectors,
        index,
        two_shot_v1_job(chunk_size=2),
    )
    stored = np.load(vectors)
    assert count == 3 and stored.shape == shape == (3, layers + 1, 3, width)
    np.testing.assert_allclose(stored.astype(np.float32), pooled.astype(np.float32), rtol=1e-2, atol=1e-3)
    table = read_parquet(index)
    assert table["id"].tolist() == rows["id"].tolist()
    # the chat model's label is teacher-forced: the last input token ends "Answer: " (the tiny BPE keeps the
    # space apart where it has no merge with the answer's first word) and predicts the answer
    assert (table["forced_prefix"].str.strip() == "Answer:").all()
    assert all(
        prefix.endswith(last) and last.strip() in (":", "")
        for prefix, last in zip(table["forced_prefix"], table["last_token"])
    )
    bare = pooled_hidden_states(model, [encode(tokenizer, rows.iloc[1])], tokenizer.pad_token_id)[0]
    np.testing.assert_allclose(bare[:, :2], pooled[1, :, :2], rtol=1e-2, atol=1e-3)  # causal: parts unchanged
    assert not np.allclose(bare[:, 2], pooled[1, :, 2], rtol=1e-2, atol=1e-3)  # the last token is another one


def test_empty_answer_has_no_last_token_state(llama, tmp_path):
    model, tokenizer = llama
    rows = prompt_rows(tokenizer, chat=True)
    rows.loc[1, "raw_output"] = "Answer:\n"
    vectors, index = tmp_path / "h.npy", tmp_path / "h.parquet"
    run_hidden_states(
        rows,
        model,
        tokenizer,
        vectors,
        index,
        two_shot_v1_job(batch_size=8),
    )
    stored, table = np.load(vectors), read_parquet(index)
    assert table["target_status"].tolist() == ["answer", "empty_answer", "answer"]
    assert table["last_token"].tolist()[1] == "" and table["forced_prefix"].tolist()[1] == ""
    assert np.isnan(stored[1, :, 2]).all() and np.isfinite(stored[1, :, :2]).all()
    assert np.isfinite(stored[[0, 2]]).all()


def test_hidden_states_resume_from_shards(llama, tmp_path, monkeypatch, capsys):
    model, tokenizer = llama
    rows = prompt_rows(tokenizer, chat=True)
    vectors, index = tmp_path / "h.npy", tmp_path / "h.parquet"
    shard_dir = vectors.with_name(vectors.name + ".shards")
    # a job killed after its first shard: the folder stays, later shards are gone
    with shards_kept(monkeypatch):
        run_hidden_states(
            rows,
            model,
            tokenizer,
            vectors,
            index,
            two_shot_v1_job(chunk_size=2),
        )
    complete = np.load(vectors)
    (shard_dir / "shard-00001.npy").unlink()
    vectors.unlink()
    run_hidden_states(
        rows,
        model,
        tokenizer,
        vectors,
        index,
        two_shot_v1_job(chunk_size=2),
    )
    resumed = np.load(vectors)
    chunks = -(-len(rows) // 2)
    reused = f"xmrc: resumed {shard_dir}: 1 of {chunks} chunks from their shards, {chunks - 1} computed"
    assert reused in capsys.readouterr().err  # the shard was kept, the rest recomputed
    np.testing.assert_array_equal(resumed, complete)
    assert not shard_dir.exists()


@pytest.mark.parametrize(
    "output, prefix, answer",
    [
        ("Answer: The Normans\nQuestion: ...", "Answer:", "The Normans"),  # a chat model writes the label first
        (" The Normans\n", "", "The Normans"),  # a base model's prompt ends with the label
        ("Answer:\nParis\n", "Answer:", "Paris"),  # the label alone on its line: the answer is the next line
    ],
)
def test_answer_start_is_the_answers_first_token(llama, output, prefix, answer):
    _, tokenizer = llama
    start = answer_start(tokenizer, output)
    assert start.status == "answer" and start.prefix_text.strip() == prefix
    assert tokenizer.decode(list(start.prefix_ids)) == start.prefix_text
    assert start.target_text.strip() and answer.startswith(start.target_text.strip())
    ids = tokenizer(output, add_special_tokens=False)["input_ids"]
    assert start.target_id == ids[len(start.prefix_ids)] and list(start.prefix_ids) == ids[: len(start.prefix_ids)]


@pytest.mark.parametrize("output", ["", "  \n", "Answer:", "Answer:\n\n", None])
def test_empty_answer_has_no_answer_token(llama, output):
    _, tokenizer = llama
    start = answer_start(tokenizer, output)
    assert start.status == "empty_answer" and not start.explained and start.target_id == -1


def test_relevance_explains_the_answer_token_of_every_row(llama, tmp_path):
    model, tokenizer = llama
    rows = prompt_rows(tokenizer, chat=True)
    rows.loc[2, "raw_output"] = "Answer:"  # empty answer
    result = run_relevance(
        rows,
        model,
        tokenizer,
        tmp_path / "r.parquet",
        two_shot_v1_job(),
        examples=3,
        tokens_output=tmp_path / "t.parquet",
    )
    items = result.drop_duplicates("id").set_index("id")
    assert items["target_status"].tolist() == ["answer", "answer", "empty_answer"]
    for number in (0, 1):
        row = items.loc[f"item{number}"]
        generated = tokenizer(rows.loc[number, "raw_output"], add_special_tokens=False)["input_ids"]
        assert row["forced_prefix"].strip() == "Answer:"
        assert row["target_id"] == generated[row["forced_tokens"]]  # the token after the label, not the label
        assert row["target_token"] == tokenizer.decode([row["target_id"]]) and row["target_token"].strip() == "The"
        # the explained logit is that token's at the end of prompt + forced label
        prompt, start = encode_to_answer(tokenizer, rows.iloc[number])
        explained = layer_relevance(model, [prompt], tokenizer.pad_token_id, targets=[start.target_id])[0]
        with torch.no_grad():
            logits = model(torch.tensor([prompt.input_ids])).logits[0, -1]
        assert explained.target_id == row["target_id"]
        assert explained.target_logit == pytest.approx(float(logits[row["target_id"]]), rel=1e-4, abs=1e-5)
        assert row["target_greedy"] == (int(logits.argmax()) == row["target_id"])
        # conservation: the explained logit, and the signed relevance summed over the tokens at depths 0..N
        assert row["target_logit"] == pytest.approx(explained.target_logit, rel=1e-5)
        assert len(row["relevance_sum"]) == row["layers"] + 1
        np.testing.assert_allclose(row["relevance_sum"], explained.relevance.sum(axis=1), rtol=1e-4, atol=1e-6)
    empty = result[result["id"] == "item2"]
    assert empty["mrd"].isna().all() and (empty["target_id"] == -1).all()
    assert empty["relevance"].map(len).eq(0).all() and (empty["n_tokens"] > 0).any()
    assert empty["target_logit"].isna().all() and empty["relevance_sum"].map(len).eq(0).all()
    tokens = read_parquet(tmp_path / "t.parquet")
    assert list(tokens.columns) == TOKEN_COLUMNS
    assert set(tokens["id"]) == {"item0", "item1"}  # kept items, but nothing to keep of the empty answer


def test_real_chat_model_relevance_explains_the_token_after_its_label(smollm2, tmp_path):
    """SmolLM2-135M-Instruct, v1 0-shot, German question: its greedy output starts with "Answer:". The
    explained token is the one it generated right after the label, and MRD is measured for it."""
    model, tokenizer = load_model(smollm2, dtype="float32")
    rows = prompt_rows(tokenizer, chat=True, shots=0, prompt_format="v1").iloc[[0]].reset_index(drop=True)
    prompt = encode(tokenizer, rows.iloc[0])
    with torch.no_grad():
        generated = model.generate(
            torch.tensor([prompt.input_ids]),
            attention_mask=torch.ones(1, len(prompt.input_ids), dtype=torch.long),
            max_new_tokens=6,
            do_sample=False,
            pad_token_id=tokenizer.pad_token_id,
        )[0, len(prompt.input_ids) :].tolist()
    rows.loc[0, "raw_output"] = tokenizer.decode(generated, skip_special_tokens=True)
    assert rows.loc[0, "raw_output"].startswith("Answer:")  # measured: "Answer: Wer gab"
    result = run_relevance(
        rows,
        model,
        tokenizer,
        tmp_path / "r.parquet",
        ExtractionJob(model_key="smollm2", shots=0, prompt_format="v1", batch_size=1, progress=False),
    ).set_index("part")
    row = result.loc["context"]
    assert row["target_status"] == "answer" and row["forced_prefix"] == "Answer:"
    assert row["target_id"] == generated[row["forced_tokens"]]  # the model's own token after the label
    assert row["target_id"] != generated[0] and tokenizer.decode([generated[0]]) == "Answer"  # not the label
    assert row["target_token"].strip() and extract_answer(rows.loc[0, "raw_output"]).startswith(
        row["target_token"].strip()
    )
    assert row["target_greedy"]  # float32 HF: the stored output is the model's greedy choice
    assert (result["layers"] == 29).all()
    for part in ("task_description", "context", "question"):
        assert 1 <= result.loc[part, "mrd"] <= 29 and len(result.loc[part, "relevance"]) == 29
    assert np.isnan(result.loc["demonstrations", "mrd"])  # 0-shot
    last = encode_to_answer(tokenizer, rows.iloc[0])[0].input_ids[-1]
    assert tokenizer.decode([last]) == ":"  # the hidden-state "last input token" ends the label
    print(
        f"explained {row['target_token']!r} (id {row['target_id']}) after {row['forced_prefix']!r}; "
        f"MRD {result['mrd'].to_dict()}"
    )
