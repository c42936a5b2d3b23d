"""An oracle job: sentence-ablation attribution of one model's 2-shot en-x answers, checkpointed in shards.

Inputs: the model's prompt and generation tables of its chosen prompt format (the one the summary table
`summary_<shots>shot.csv` reports, chosen by its format criterion), the sentence units of the contexts, and
the model itself. For every sampled item of every configured direction the answer is generated again
greedily to recover its token ids (`xmrc.analysis.oracle.regeneration`, which also says what is attributed
where the regenerated answer differs from the stored one: column `target_source`).

Output (one row per item and direction):
    model, shots, prompt_format, context_lang, question_lang, id
    implementation    str    batched | captum
    status            str    ok | empty_answer (nothing to attribute) | no_gold_unit (answer not located
                             in the context) | target_unaligned (tokens and answer text do not align)
    n_units           int    sentence units of the context
    gold_unit         int    index of the unit holding the gold answer (-1: none)
    merged            bool   the gold unit merges sentences the answer crosses
    prediction        str    the answer attributed
    target_source     str    regenerated | retokenized (answer) | continued (eos)
    target_ids        list   target token ids: through the end of the answer, or through the first EOS,
                             pads never (protocol.oracle_sequence: answer | eos)
    answer_token      int    index in target_ids of the "Step" token: the answer's first token, or 0
                             (protocol.oracle_step: answer_token | first_step)
    step_attr         list   attribution of each unit to the "Step" token (log prob drop)
    sequence_attr     list   attribution of each unit to the whole target (sum of log probs)
    step_top, sequence_top          int   unit of strictly largest attribution (-1: tie or not ok)
    step_correct, sequence_correct  bool  that unit is the gold unit
    seconds           float  attribution time of the item
Checkpointed in shards (`xmrc.jobs`): a killed job resumes from the shards it finished.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from xmrc.analysis.oracle.ablation import create_evaluator, item_from_prompt, top_unit
from xmrc.analysis.oracle.regeneration import DEFAULT_RULE, TargetRule, item_targets
from xmrc.exceptions import XmrcError
from xmrc.io import write_parquet
from xmrc.jobs import Checkpoint, ParquetStore, digest, run_sharded

ITEM_KEY = ["context_lang", "question_lang", "id"]
RESULT_COLUMNS = [
    "model",
    "shots",
    "prompt_format",
    "context_lang",
    "question_lang",
    "id",
    "implementation",
    "status",
    "n_units",
    "gold_unit",
    "merged",
    "prediction",
    "target_source",
    "target_ids",
    "answer_token",
    "step_attr",
    "sequence_attr",
    "step_top",
    "sequence_top",
    "step_correct",
    "sequence_correct",
    "seconds",
]


def chosen_format(summary: pd.DataFrame, model_name: str, source: str) -> str:
    """The prompt format the summary table reports for a model."""
    if "model" not in summary.columns or "prompt_format" not in summary.columns:
        raise XmrcError(f"{source}: needs columns model and prompt_format")
    rows = summary[summary["model"] == model_name]
    if rows.empty:
        raise XmrcError(f"{source}: no row for model '{model_name}'")
    return str(rows["prompt_format"].iloc[0])


def format_files(
    summary: pd.DataFrame, model_name: str, source: str, prompt_files: dict[str, str], generation_files: dict[str, str]
) -> tuple[str, str, str]:
    """(format, prompt table, generation table) of the format the summary table reports for a model, from the
    files given per format."""
    prompt_format = chosen_format(summary, model_name, source)
    if prompt_format not in prompt_files or prompt_format not in generation_files:
        raise XmrcError(
            f"{source}: model '{model_name}' uses format {prompt_format}, but no prompts or "
            f"generations of that format were given"
        )
    return prompt_format, prompt_files[prompt_format], generation_files[prompt_format]


def sample_ids(ids: list[str], sample_size: int | None, seed: int) -> list[str]:
    """`sample_size` ids drawn with `seed` (all when None or larger), kept in their original order, so
    every direction and every model is evaluated on the same items."""
    if sample_size is None or sample_size >= len(ids):
        return list(ids)
    chosen = set(random.Random(seed).sample(sorted(ids), sample_size))
    return [item for item in ids if item in chosen]


@dataclass(frozen=True)
class WorkItem:
    id: str
    context_lang: str
    question_lang: str
    prompt: str
    templated: bool
    context_start: int
    context_end: int
    raw_output: str
    prediction: str
    units: tuple[tuple[int, int], ...]
    gold_unit: int
    merged: bool


def work_items(
    prompts: pd.DataFrame,
    generations: pd.DataFrame,
    units: pd.DataFrame,
    question_langs: list[str],
    sample_size: int | None,
    seed: int,
) -> list[WorkItem]:
    """The (direction, item) pairs to attribute, in direction order then table order."""
    keys = ["id", "context_lang", "question_lang"]
    table = prompts.merge(generations[keys + ["raw_output", "prediction"]], on=keys, how="inner")
    table = table[table["context_lang"] == "en"]
    missing = [q for q in question_langs if not (table["question_lang"] == q).any()]
    if missing:
        raise XmrcError(f"no prompts with generations for direction(s) {', '.join('en-' + q for q in missing)}")
    english = table[table["question_lang"] == question_langs[0]]["id"].tolist()
    chosen = set(sample_ids(english, sample_size, seed))
    by_context = {key: group.sort_values("unit") for key, group in units.groupby(["id", "lang"], sort=False)}
    items = []
    for question_lang in question_langs:
        rows = table[(table["question_lang"] == question_lang) & table["id"].isin(chosen)]
        for row in rows.itertuples(index=False):
            group = by_context.get((row.id, row.context_lang))
            if group is None:
                raise XmrcError(f"sentence units: no units for item {row.id} ({row.context_lang})")
            spans = tuple(zip(group["start"].tolist(), group["end"].tolist()))
            if spans[-1][1] != row.context_end - row.context_start:
                raise XmrcError(
                    f"item {row.id} ({row.context_lang}-{row.question_lang}): the sentence units "
                    "do not cover the prompt's context (units from another XQuAD table?)"
                )
            gold = group.index[group["is_gold"]].tolist()
            gold_unit = int(group.loc[gold[0], "unit"]) if gold else -1
            merged = bool(group.loc[gold[0], "sentences"] > 1) if gold else False
            items.append(
                WorkItem(
                    row.id,
                    row.context_lang,
                    row.question_lang,
                    row.prompt,
                    bool(row.templated),
                    int(row.context_start),
                    int(row.context_end),
                    row.raw_output or "",
                    row.prediction or "",
                    spans,
                    gold_unit,
                    merged,
                )
            )
    return items


def _result(item: WorkItem, base: dict, status: str, **fields) -> dict:
    row = dict(
        base,
        context_lang=item.context_lang,
        question_lang=item.question_lang,
        id=item.id,
        status=status,
        n_units=len(item.units),
        gold_unit=item.gold_unit,
        merged=item.merged,
        prediction=item.prediction,
        target_source="",
        target_ids=[],
        answer_token=-1,
        step_attr=[],
        sequence_attr=[],
        step_top=-1,
        sequence_top=-1,
        step_correct=False,
        sequence_correct=False,
        seconds=0.0,
    )
    row.update(fields)
    return row


def attribute_items(
    items: list[WorkItem],
    model,
    tokenizer,
    evaluator,
    base: dict,
    max_new_tokens: int,
    generation_batch_size: int,
    rule: TargetRule = DEFAULT_RULE,
) -> list[dict]:
    """Result rows of a list of items (one shard)."""
    rows = []
    attributed = [item for item in items if item.prediction and item.gold_unit >= 0]
    targets = item_targets(attributed, model, tokenizer, max_new_tokens, generation_batch_size, rule)
    for item in items:
        if not item.prediction:
            rows.append(_result(item, base, "empty_answer"))
            continue
        if item.gold_unit < 0:
            rows.append(_result(item, base, "no_gold_unit"))
            continue
        target, source = targets[(item.id, item.question_lang)]
        if target is None:
            rows.append(_result(item, base, "target_unaligned", target_source=source))
            continue
        ablation = item_from_prompt(item.prompt, item.context_start, item.units, item.templated, target)
        started = time.perf_counter()
        attr = evaluator.attribute(ablation)
        seconds = time.perf_counter() - started
        step, sequence = attr[1 + target.answer_token], attr[0]
        step_top, sequence_top = top_unit(step), top_unit(sequence)
        rows.append(
            _result(
                item,
                base,
                "ok",
                target_source=source,
                target_ids=target.ids,
                answer_token=target.answer_token,
                step_attr=step.astype(float).tolist(),
                sequence_attr=sequence.astype(float).tolist(),
                step_top=-1 if step_top is None else step_top,
                sequence_top=-1 if sequence_top is None else sequence_top,
                step_correct=step_top == item.gold_unit,
                sequence_correct=sequence_top == item.gold_unit,
                seconds=seconds,
            )
        )
    return rows


def run_oracle(
    items: list[WorkItem],
    model,
    tokenizer,
    output: Path,
    *,
    base: dict,
    implementation: str,
    batch_size: int,
    max_new_tokens: int,
    generation_batch_size: int,
    chunk_size: int,
    settings: dict | None = None,
    progress: bool = True,
    rule: TargetRule = DEFAULT_RULE,
) -> pd.DataFrame:
    """Attributions of every item, checkpointed in shards (`xmrc.jobs`); `settings` (the command's arguments:
    weights, dtype, ...) enter the job's fingerprint, so shards of another job are never reused."""
    output = Path(output)
    evaluator = create_evaluator(implementation, model, tokenizer, batch_size)
    base = dict(base, implementation=implementation)
    job = {
        **base,
        "batch_size": batch_size,
        "max_new_tokens": max_new_tokens,
        "chunk_size": chunk_size,
        "generation_batch_size": generation_batch_size,
        "extraction": rule.extraction,
        "sequence": rule.sequence,
        "step": rule.step,
        **(settings or {}),
        "items": digest(*(repr(item) for item in items)),
    }

    def attribute_chunk(chunk: list[WorkItem]) -> pd.DataFrame:
        rows = attribute_items(chunk, model, tokenizer, evaluator, base, max_new_tokens, generation_batch_size, rule)
        return pd.DataFrame(rows, columns=RESULT_COLUMNS)

    def write_output(frames: list[pd.DataFrame]) -> pd.DataFrame:
        result = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=RESULT_COLUMNS)
        write_parquet(result, output)
        return result

    keys = ["\t".join((item.context_lang, item.question_lang, item.id)) for item in items]
    checkpoint = Checkpoint(output, job, chunk_size, f"oracle {base['model']}", progress=progress)
    return run_sharded(items, keys, attribute_chunk, ParquetStore(RESULT_COLUMNS, ITEM_KEY), write_output, checkpoint)
