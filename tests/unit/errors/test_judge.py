"""The LLM judge: verbatim prompt, label scoring on real tiny models, verdicts always labels or 'invalid',
resumable shards, and the vLLM request (vLLM itself does not run here)."""

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from helpers import ROOT
from helpers.jobs import killed_then_resumed
from xmrc.errors import KEYS
from xmrc.errors.judge import (
    CATEGORIES,
    INSTRUCTION,
    INVALID,
    JUDGE_COLUMNS,
    LABELS,
    judge_text,
    label_scores_from_logprobs,
    run_judge,
    verdict_of,
    verdicts_and_scores,
    vllm_request,
)
from xmrc.exceptions import XmrcError
from xmrc.io import read_parquet
from xmrc.prompts import hf_chat_template

# The judge prompt under protocol.layout: paper, A.3 as laid out in the paper (blank lines around the category
# list), and under layout: compact (single line breaks throughout; also how PAPER.md transcribes A.3).
PAPER_PROMPT = (ROOT / "tests" / "data" / "a3_judge.txt").read_text(encoding="utf-8")
COMPACT_PROMPT = (ROOT / "tests" / "data" / "judge_prompt_compact.txt").read_text(encoding="utf-8")

# Qwen-2.5-Instruct's template, reduced to what the judge uses: its default system prompt and the turns.
QWEN25_TEMPLATE = (
    "{%- if messages[0]['role'] != 'system' %}"
    "{{- '<|im_start|>system\\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\\n' }}"
    "{%- endif %}"
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)


@pytest.fixture(scope="module")
def qwen_scorer(tiny_models):
    from xmrc.errors.label_scoring import LabelScorer

    return LabelScorer(str(tiny_models["qwen2-chat"]), dtype="float32", batch_size=4, progress=False)


def wrong_answers(n=5):
    raw = [
        "Answer: Paris",
        "",
        "Answer:",
        "I cannot answer this question.",
        "{Your Answer}",
        "Answer: 1066",
        "asdf qwer",
        "Answer: the Normans",
    ]
    return pd.DataFrame(
        [
            {
                "model": "M",
                "shots": 2,
                "prompt_format": "v1",
                "context_lang": "en",
                "question_lang": "de",
                "id": f"q{i}",
                "question": f"Wo liegt {i}?",
                "raw_output": raw[i % len(raw)],
            }
            for i in range(n)
        ]
    )


def test_prompt_through_qwen25_template_is_the_papers_verbatim(tiny_models):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_models["qwen2-chat"])
    tokenizer.chat_template = QWEN25_TEMPLATE
    rendered = hf_chat_template(tokenizer)(judge_text("Wer?", "Answer: Rollo"))
    assert rendered.startswith(PAPER_PROMPT.rstrip("\n") + "\n\nQuestion: Wer?")
    assert rendered.endswith("Question: Wer?\n\nRaw answer: Answer: Rollo<|im_end|>\n<|im_start|>assistant\n")
    compact = hf_chat_template(tokenizer)(judge_text("Wer?", "Answer: Rollo", layout="compact"))
    assert compact.startswith(COMPACT_PROMPT)
    assert compact.endswith("Question: Wer?\nRaw answer: Answer: Rollo<|im_end|>\n<|im_start|>assistant\n")
    assert INSTRUCTION in COMPACT_PROMPT and PAPER_PROMPT.replace("\n\n", "\n") == COMPACT_PROMPT


def test_verdict_of_anything_that_is_not_a_label_is_invalid():
    assert [verdict_of(t) for t in ("0", " 2\n", "3")] == [0, 2, 3]
    assert [verdict_of(t) for t in ("4", "", None, "yes", "01", "2.")] == [INVALID] * 6
    assert CATEGORIES[INVALID] == "invalid"


def test_scores_pick_the_best_label_and_rows_without_scores_are_invalid():
    scores = np.array([[-3, -1, -2, -4], [np.nan, np.nan, -0.5, np.nan], [np.nan] * 4], dtype=np.float32)
    verdicts, _ = verdicts_and_scores(scores, 3)
    assert verdicts == [1, 2, INVALID]
    verdicts, _ = verdicts_and_scores(([3, 7, -1], np.zeros((3, 4))), 3)
    assert verdicts == [3, INVALID, INVALID]


def test_vllm_request_is_a_greedy_choice_among_the_label_strings():
    request = vllm_request()
    assert request["choice"] == ["0", "1", "2", "3"]
    assert request["temperature"] == 0.0 and request["max_tokens"] >= 1 and request["logprobs"] >= len(LABELS)


def test_vllm_label_scores_come_from_the_top_logprobs():
    top = {
        11: SimpleNamespace(logprob=-0.1, decoded_token="2"),
        12: SimpleNamespace(logprob=-2.5, decoded_token="0"),
        13: SimpleNamespace(logprob=-3.0, decoded_token=" yes"),
    }
    scores = label_scores_from_logprobs(top, LABELS)
    assert scores[0] == -2.5 and scores[2] == -0.1 and np.isnan(scores[1]) and np.isnan(scores[3])
    assert all(np.isnan(label_scores_from_logprobs(None, LABELS)))


@pytest.mark.parametrize("name", ["llama-chat", "qwen2-chat", "mistral-base", "gemma2-chat"])
def test_labels_are_distinct_single_tokens_in_every_family(tiny_models, name):
    from transformers import AutoTokenizer

    from xmrc.errors.label_scoring import label_token_ids

    tokenizer = AutoTokenizer.from_pretrained(tiny_models[name])
    ids = label_token_ids(tokenizer, LABELS)
    assert len(set(ids)) == 4
    assert [tokenizer.decode([i]).strip() for i in ids] == list(LABELS)
    with pytest.raises(XmrcError, match="not a single token"):
        label_token_ids(tokenizer, ["Reasonable Answer here"])


def test_batched_scores_equal_scores_one_at_a_time(qwen_scorer):
    prompts = [
        hf_chat_template(qwen_scorer.tokenizer)(judge_text(f"Frage {'lang ' * i}?", "Answer: x")) for i in range(5)
    ]
    batched = qwen_scorer.score(prompts, LABELS, templated=True)
    qwen_scorer.batch_size = 1
    try:
        single = qwen_scorer.score(prompts, LABELS, templated=True)
    finally:
        qwen_scorer.batch_size = 4
    assert batched.shape == (5, 4) and np.all(batched < 0)
    np.testing.assert_allclose(batched, single, atol=1e-4)


class Counting:
    """The real scorer, counting the prompts it is asked for; `fail_after` prompts it stops, like a kill."""

    def __init__(self, scorer, fail_after=None):
        self.scorer, self.fail_after, self.prompts = scorer, fail_after, 0

    def score(self, prompts, labels, templated):
        if self.fail_after is not None and self.prompts >= self.fail_after:
            raise KeyboardInterrupt
        self.prompts += len(prompts)
        return self.scorer.score(prompts, labels, templated)


def test_judge_job_gives_label_verdicts_and_resumes_after_a_kill(qwen_scorer, tmp_path):
    answers = wrong_answers(7)
    template = hf_chat_template(qwen_scorer.tokenizer)
    out = tmp_path / "judge.parquet"
    killed = Counting(qwen_scorer, fail_after=3)
    with pytest.raises(KeyboardInterrupt):
        run_judge(answers, killed, out, judge_name="J", chat_template=template, chunk_size=3, progress=False)
    assert not out.exists() and killed.prompts == 3
    resumed = Counting(qwen_scorer)
    result = run_judge(answers, resumed, out, judge_name="J", chat_template=template, chunk_size=3, progress=False)
    assert resumed.prompts == 4  # the first shard was kept
    assert list(result.columns) == JUDGE_COLUMNS and result[KEYS].equals(answers[KEYS])
    assert set(result["verdict"]) <= {0, 1, 2, 3}
    assert (result["category"] == result["verdict"].map(CATEGORIES)).all()
    fresh = run_judge(
        answers,
        qwen_scorer,
        tmp_path / "fresh.parquet",
        judge_name="J",
        chat_template=template,
        chunk_size=7,
        progress=False,
    )
    np.testing.assert_allclose(
        result[["score_0", "score_1", "score_2", "score_3"]],
        fresh[["score_0", "score_1", "score_2", "score_3"]],
        atol=1e-4,
    )
    assert not (tmp_path / "judge.parquet.shards").exists()


def test_stale_shard_of_other_answers_is_judged_again(qwen_scorer, tmp_path):
    template = hf_chat_template(qwen_scorer.tokenizer)
    out = tmp_path / "judge.parquet"
    first = wrong_answers(3)
    killed = Counting(qwen_scorer, fail_after=2)
    with pytest.raises(KeyboardInterrupt):
        run_judge(first, killed, out, judge_name="J", chat_template=template, chunk_size=2, progress=False)
    changed = first.assign(id=["x0", "x1", "x2"])
    counting = Counting(qwen_scorer)
    result = run_judge(changed, counting, out, judge_name="J", chat_template=template, chunk_size=2, progress=False)
    assert counting.prompts == 3 and result["id"].tolist() == ["x0", "x1", "x2"]


def test_shards_of_another_judge_are_never_reused(qwen_scorer, tmp_path):
    # same wrong answers, the job killed after one shard, then run again with another judge (weights): a
    # shard's rows match, so only the job's fingerprint tells the verdicts apart
    template = hf_chat_template(qwen_scorer.tokenizer)
    out = tmp_path / "judge.parquet"
    answers = wrong_answers(4)
    killed = Counting(qwen_scorer, fail_after=2)
    with pytest.raises(KeyboardInterrupt):
        run_judge(
            answers,
            killed,
            out,
            judge_name="J",
            chat_template=template,
            chunk_size=2,
            settings={"weights": "judge-a"},
            progress=False,
        )
    other = Counting(qwen_scorer)
    run_judge(
        answers,
        other,
        out,
        judge_name="J",
        chat_template=template,
        chunk_size=2,
        settings={"weights": "judge-b"},
        progress=False,
    )
    assert other.prompts == 4


def test_judge_job_killed_after_a_chunk_resumes_through_the_checkpoint_loop(qwen_scorer, tmp_path, monkeypatch):
    answers = wrong_answers(5)
    options = dict(judge_name="J", chat_template=hf_chat_template(qwen_scorer.tokenizer), chunk_size=2, progress=False)
    reference = run_judge(answers, qwen_scorer, tmp_path / "ref.parquet", **options)
    out = tmp_path / "judge.parquet"
    result, computed = killed_then_resumed(
        monkeypatch, "xmrc.errors.judge", out, lambda: run_judge(answers, qwen_scorer, out, **options)
    )
    assert computed == [2, 1]  # the first chunk came from its shard
    pd.testing.assert_frame_equal(result, reference)
    pd.testing.assert_frame_equal(read_parquet(out), read_parquet(tmp_path / "ref.parquet"))


class OffLabel:
    """Stands in for a backend that can return text outside the labels (vLLM cannot run on this machine)."""

    def score(self, prompts, labels, templated):
        return [INVALID if i % 2 else 2 for i in range(len(prompts))], np.full((len(prompts), 4), np.nan)


def test_off_label_output_is_recorded_as_invalid_not_a_crash(tmp_path):
    result = run_judge(
        wrong_answers(4), OffLabel(), tmp_path / "j.parquet", judge_name="J", chat_template=None, progress=False
    )
    assert result["category"].tolist() == ["gibberish", "invalid", "gibberish", "invalid"]


def test_empty_w_gives_an_empty_judge_table(tmp_path):
    result = run_judge(
        wrong_answers(0).reindex(columns=KEYS + ["question", "raw_output"]),
        OffLabel(),
        tmp_path / "j.parquet",
        judge_name="J",
        chat_template=None,
        progress=False,
    )
    assert result.empty and list(read_parquet(tmp_path / "j.parquet").columns) == JUDGE_COLUMNS
