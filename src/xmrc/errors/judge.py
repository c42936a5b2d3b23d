"""The LLM judge of generation failures: the paper's prompt (PAPER.md, verbatim) with the question and the
raw answer, and a verdict constrained to the labels "0"-"3".

- HF backend (`label_scoring.LabelScorer`): the verdict is the label token with the highest next-token score;
  it is a label by construction.
- vLLM backend (`VLLMJudge`): structured output, a choice among the label strings; the label scores are the
  labels' log-probabilities among the returned top log-probabilities (NaN when absent). Anything else that
  comes back is recorded as the verdict -1, "invalid": counted and reported, never a crash. vLLM reports
  them after the structured-output mask, so they are normalised over the labels (they sum to 1), where the
  HF scores are over the whole vocabulary: the same verdicts, scores that differ by a constant per answer
  (measured on SmolLM2-135M-Instruct: equal within 0.02 once the HF scores are normalised over the labels).

The prompt goes through the judge's own chat template as one user turn, so Qwen-2.5-Instruct gets exactly the
paper's text (its default system prompt is the one printed). A judge without a chat template gets the text
followed by "\\nCategory:".

A judging job covers the wrong answers of every model, so the judge loads once; it checkpoints every
`chunk_size` answers (`xmrc.jobs`) and a killed job resumes from the shards it finished.

Output (judge.parquet): KEYS + judged_text, verdict (-1..3), category, score_0..score_3 (log-probabilities),
judge (model name).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import numpy as np
import pandas as pd

from xmrc.errors import KEYS
from xmrc.io import write_parquet
from xmrc.jobs import Checkpoint, ParquetStore, digest, run_sharded, table_keys

INSTRUCTION = (
    "You are tasked with identifying the type of a given raw answer. You will be provided with a question and a "
    "raw answer. Your job is to determine whether the raw answer falls into one of the following categories "
    "based on the given question:\n"
    "0. Reasonable Answer: The answer seems like some attempt to answer the question, regardless of whether it "
    "is correct or not.\n"
    "1. Blank Answer: No response is provided.\n"
    "2. Gibberish: Incoherent text with no clear meaning or cannot be seen as some kind of answer to the "
    "question, e.g. \u201c{Your Answer}\u201d.\n"
    "3. Denial of Answer: A statement indicating inability to answer, such as \u201cI apologize, but I cannot "
    "answer this question because...\u201d.\n"
    "You must provide your response as a SINGLE number representing the category (0, 1, 2, or 3) without extra "
    "output."
)
LABELS = ("0", "1", "2", "3")
CATEGORIES = {0: "reasonable", 1: "blank", 2: "gibberish", 3: "refusal", -1: "invalid"}
INVALID = -1
BASE_MODEL_CUE = "\nCategory:"
SCORE_COLUMNS = [f"score_{label}" for label in LABELS]
JUDGE_COLUMNS = KEYS + ["judged_text", "verdict", "category"] + SCORE_COLUMNS + ["judge"]


def instruction(layout: str = "paper") -> str:
    """The judge instruction under protocol.layout: "paper" as A.3 prints it (a blank line before and after the
    category list, single line breaks inside it), "compact" with single line breaks throughout."""
    if layout == "compact":
        return INSTRUCTION
    intro, *categories, closing = INSTRUCTION.split("\n")
    return "\n\n".join([intro, "\n".join(categories), closing])


def judge_text(question: str, raw_answer: str, layout: str = "paper") -> str:
    """The user turn: the paper's instruction, then "Question: ..." and "Raw answer: ..." (our choice; the paper
    does not print how they are appended), joined as the layout joins prompt elements."""
    separator = "\n" if layout == "compact" else "\n\n"
    return separator.join([instruction(layout), f"Question: {question}", f"Raw answer: {raw_answer}"])


def judged_answer(raw_output: str | None) -> str:
    return (raw_output or "").strip()


def verdict_of(text: str | None) -> int:
    """A label string's verdict; anything else is INVALID."""
    text = (text or "").strip()
    return LABELS.index(text) if text in LABELS else INVALID


class Scorer(Protocol):
    def score(self, prompts: Sequence[str], labels: Sequence[str], templated: bool) -> np.ndarray | tuple:
        """(n, len(labels)) label scores, or (verdicts, scores) when the backend picks the verdict itself."""
        ...


def verdicts_and_scores(result, n: int) -> tuple[list[int], np.ndarray]:
    """Normalise a scorer's result: a score matrix (verdict = best label; rows without a finite score are
    INVALID) or an explicit (verdicts, scores) pair."""
    if isinstance(result, tuple):
        verdicts, scores = result
        verdicts = [v if v in CATEGORIES else INVALID for v in (int(v) for v in verdicts)]
    else:
        scores = np.asarray(result, dtype=np.float32)
        finite = np.isfinite(scores)
        verdicts = [
            int(np.argmax(np.where(ok, row, -np.inf))) if ok.any() else INVALID for row, ok in zip(scores, finite)
        ]
    scores = np.asarray(scores, dtype=np.float32).reshape(n, len(LABELS))
    return verdicts, scores


# --- vLLM: structured output ------------------------------------------------------------------------------


def vllm_request(labels: Sequence[str] = LABELS, top_logprobs: int = 20) -> dict:
    """What the vLLM judge asks for: greedy, a choice among the label strings, top log-probabilities."""
    return {"temperature": 0.0, "max_tokens": 4, "logprobs": top_logprobs, "choice": list(labels)}


def vllm_sampling_params(request: dict):
    """vllm.SamplingParams for `vllm_request(...)` (StructuredOutputsParams in vLLM >= 0.11, the older
    GuidedDecodingParams before)."""
    from vllm import SamplingParams

    options = {k: v for k, v in request.items() if k != "choice"}
    try:
        from vllm.sampling_params import StructuredOutputsParams
    except ImportError:
        from vllm.sampling_params import GuidedDecodingParams

        return SamplingParams(**options, guided_decoding=GuidedDecodingParams(choice=request["choice"]))
    return SamplingParams(**options, structured_outputs=StructuredOutputsParams(choice=request["choice"]))


def label_scores_from_logprobs(top: dict | None, labels: Sequence[str]) -> list[float]:
    """Each label's log-probability among a vLLM step's top log-probabilities (token id -> Logprob), NaN where
    it is not among them."""
    found = {}
    for entry in (top or {}).values():
        token = (getattr(entry, "decoded_token", None) or "").strip()
        if token in labels and token not in found:
            found[token] = float(entry.logprob)
    return [found.get(label, math.nan) for label in labels]


class VLLMJudge:
    name = "vllm"

    def __init__(self, weights: str, revision: str | None = None, dtype: str = "bfloat16", gpus: int = 1):
        from vllm import LLM

        from xmrc.backends.vllm import cpu_platform_settings, engine_settings

        self.settings = engine_settings(
            weights, revision=revision, dtype=dtype, tensor_parallel_size=max(gpus, 1), platform=cpu_platform_settings()
        )
        self.llm = LLM(**self.settings)
        self.tokenizer = self.llm.get_tokenizer()

    def score(self, prompts: Sequence[str], labels: Sequence[str], templated: bool):
        from vllm.inputs import TokensPrompt

        params = vllm_sampling_params(vllm_request(labels))
        encoded = [
            TokensPrompt(prompt_token_ids=self.tokenizer(p, add_special_tokens=not templated)["input_ids"])
            for p in prompts
        ]
        outputs = self.llm.generate(encoded, params)
        verdicts, scores = [], []
        for output in outputs:
            completion = output.outputs[0]
            verdicts.append(verdict_of(completion.text))
            scores.append(label_scores_from_logprobs(completion.logprobs[0] if completion.logprobs else None, labels))
        return verdicts, np.asarray(scores, dtype=np.float32)


def open_scorer(backend: str, weights: str, revision: str | None, dtype: str, batch_size: int, gpus: int) -> Scorer:
    """The judge's scorer on `backend` (hf or vllm) over local `weights`."""
    if backend == "vllm":
        return VLLMJudge(weights, revision, dtype, gpus=gpus)
    from xmrc.errors.label_scoring import LabelScorer  # torch and transformers

    return LabelScorer(
        weights, revision, dtype, batch_size, gpus=max(gpus, 1), progress=False
    )  # run_judge shows progress per shard


# --- the judging job ----------------------------------------------------------------------------------------


def build_prompts(wrong: pd.DataFrame, chat_template, layout: str = "paper") -> list[str]:
    texts = [judge_text(q, judged_answer(r), layout) for q, r in zip(wrong["question"], wrong["raw_output"])]
    if chat_template is None:
        return [text + BASE_MODEL_CUE for text in texts]
    return [chat_template(text) for text in texts]


def run_judge(
    wrong: pd.DataFrame,
    scorer: Scorer,
    output: Path,
    *,
    judge_name: str,
    chat_template,
    chunk_size: int = 512,
    settings: dict | None = None,
    progress: bool = True,
    layout: str = "paper",
) -> pd.DataFrame:
    """Verdicts of every wrong answer, checkpointed in shards (`xmrc.jobs`); `settings` (the command's arguments:
    judge weights, dtype, ...) enter the job's fingerprint, so shards of another judge are never reused."""
    output = Path(output)
    templated = chat_template is not None
    job = {
        "judge": judge_name,
        "scorer": getattr(scorer, "name", type(scorer).__name__),
        "templated": templated,
        "chunk_size": chunk_size,
        "labels": list(LABELS),
        "layout": layout,
        **(settings or {}),
        "answers": digest(*(f"{q}\t{r}" for q, r in zip(wrong["question"], wrong["raw_output"]))),
    }

    def judge_chunk(chunk: pd.DataFrame) -> pd.DataFrame:
        verdicts, scores = verdicts_and_scores(
            scorer.score(build_prompts(chunk, chat_template, layout), LABELS, templated), len(chunk)
        )
        frame = chunk[KEYS].copy()
        frame["judged_text"] = [judged_answer(r) for r in chunk["raw_output"]]
        frame["verdict"] = verdicts
        frame["category"] = [CATEGORIES[v] for v in verdicts]
        for column, values in zip(SCORE_COLUMNS, scores.T):
            frame[column] = values
        frame["judge"] = judge_name
        return frame[JUDGE_COLUMNS]

    def write_output(frames: list[pd.DataFrame]) -> pd.DataFrame:
        result = pd.concat(frames, ignore_index=True) if frames else _empty()
        write_parquet(result, output)
        return result

    checkpoint = Checkpoint(output, job, chunk_size, f"judge {judge_name}", "answer", progress)
    store = ParquetStore(JUDGE_COLUMNS, key_columns=KEYS)
    return run_sharded(wrong, table_keys(wrong, KEYS), judge_chunk, store, write_output, checkpoint)


def _empty() -> pd.DataFrame:
    frame = pd.DataFrame({column: pd.Series(dtype="object") for column in JUDGE_COLUMNS})
    frame["shots"] = frame["shots"].astype("int64")
    frame["verdict"] = frame["verdict"].astype("int64")
    for column in SCORE_COLUMNS:
        frame[column] = frame[column].astype("float32")
    return frame
