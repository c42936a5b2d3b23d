"""The oracle's targets recovered from the model: every stored answer regenerated as token ids, checked against
the stored prediction, and what is attributed where the regeneration does not reproduce it.

The generation stage stores text; attribution needs the token ids the model generated. The answers are
regenerated greedily, batched as the generation stage batches (`xmrc.backends.hf.generate_until`), and the
ids are kept when they reproduce the stored prediction (`target_source: regenerated`). Otherwise (batch
effects in half precision, or an extraction that reads on once the stop rule is gone):
  answer   the stored raw output is tokenised (`retokenized`): it was generated with the stop rule, so it
           ends at the answer, where this target ends too;
  eos      the stored output ends where the stop rule stopped, not at EOS, so it is continued greedily
           without the stop rule until EOS or max_new_tokens (`continued`); "Step" is located in the stored
           output, whose extraction is the stored prediction.
Every generation is cut after its first end-of-sequence id: a batch fills the rows that have ended with pad
ids, and a target that kept them would depend on which prompts shared the batch.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from functools import partial

from xmrc.analysis.oracle.ablation import (
    SEQUENCE_TARGETS,
    STEP_TARGETS,
    Target,
    align_target,
    encode,
    through_first_stop,
)
from xmrc.exceptions import check_choice
from xmrc.extract import answer_complete, check_extraction, extract_answer


@dataclass(frozen=True)
class TargetRule:
    """How the answer is found in a generation (protocol.extraction), where the "Sequence" target ends
    (protocol.oracle_sequence: "answer" stops decoding where the generation stage stops, "eos" decodes on to
    EOS or max_new_tokens) and which token is "Step" (protocol.oracle_step: the answer's first token, or the
    first generated one)."""

    extraction: str = "first_line"
    sequence: str = "answer"
    step: str = "answer_token"

    def __post_init__(self):
        check_extraction(self.extraction)
        check_choice("protocol.oracle_sequence", self.sequence, SEQUENCE_TARGETS)
        check_choice("protocol.oracle_step", self.step, STEP_TARGETS)

    def stop_when(self):
        return None if self.sequence == "eos" else partial(answer_complete, rule=self.extraction)

    def align(self, ids: Sequence[int], tokenizer, stops: frozenset[int]) -> Target | None:
        return align_target(ids, tokenizer, self.extraction, self.sequence, self.step, stops)


DEFAULT_RULE = TargetRule()


def stop_ids(model, tokenizer) -> frozenset[int]:
    """The ids a generation ends at: the generation config's eos ids (generate stops at any of them, e.g.
    LLaMA-3.1-Instruct's <|eot_id|> and <|end_of_text|>) and the tokenizer's eos."""
    configured = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    ids = [] if configured is None else [configured] if isinstance(configured, int) else list(configured)
    if tokenizer.eos_token_id is not None:
        ids.append(tokenizer.eos_token_id)
    return frozenset(ids)


def generate_ids(
    model,
    tokenizer,
    prompts: list[str],
    templated: bool,
    max_new_tokens: int,
    batch_size: int,
    rule: TargetRule = DEFAULT_RULE,
    heads: list[list[int]] | None = None,
) -> list[list[int]]:
    """Greedy continuations as token ids, generated as the generation stage generates them (under "eos"
    without its stop rule), each through its first end-of-sequence id, never the pads after it. `heads`:
    ids each continuation starts with (a stored output continued), counted in max_new_tokens."""
    from xmrc.backends.hf import generate_until  # loads torch and transformers

    heads = heads or [[] for _ in prompts]
    encoded = [encode(tokenizer, text, templated) + head for text, head in zip(prompts, heads)]
    limit = max_new_tokens - min((len(head) for head in heads), default=0)
    new = [[] for _ in encoded]
    if encoded and limit > 0:
        generated = generate_until(model, tokenizer, encoded, limit, batch_size, stop_when=rule.stop_when())
        new = [ids.tolist() for ids in generated]
    stops = stop_ids(model, tokenizer)
    # Greedy decoding makes a shorter limit a prefix of a longer one: each row is cut to its own.
    return [
        through_first_stop(head + more[: max(max_new_tokens - len(head), 0)], stops) for head, more in zip(heads, new)
    ]


def _key(item) -> tuple[str, str]:
    return item.id, item.question_lang


def _by_template(items: list, generate: Callable[[list, bool], list[list[int]]]) -> dict:
    """Generated ids of every item by key, prompts with and without a chat template generated apart (they
    are tokenised differently)."""
    result = {}
    for flag in {item.templated for item in items}:
        group = [item for item in items if item.templated == flag]
        result.update(zip(map(_key, group), generate(group, flag)))
    return result


def stored_ids(item, tokenizer) -> list[int]:
    return tokenizer(item.raw_output, add_special_tokens=False)["input_ids"]


def reproduces(ids: list[int], item, tokenizer, extraction: str) -> bool:
    """Whether generated ids give the item's stored prediction."""
    return extract_answer(tokenizer.decode(ids, skip_special_tokens=True), extraction) == item.prediction


def item_targets(
    items: list, model, tokenizer, max_new_tokens: int, batch_size: int, rule: TargetRule = DEFAULT_RULE
) -> dict[tuple[str, str], tuple[Target | None, str]]:
    """(target or None when unaligned, target_source) of every item (`xmrc.analysis.oracle.run.WorkItem`s
    with an answer), by (id, question_lang)."""
    stops = stop_ids(model, tokenizer)
    regenerated = _by_template(
        items,
        lambda group, flag: generate_ids(
            model, tokenizer, [i.prompt for i in group], flag, max_new_tokens, batch_size, rule
        ),
    )
    targets, unmatched = {}, []
    for item in items:
        ids = regenerated[_key(item)]
        if reproduces(ids, item, tokenizer, rule.extraction):
            targets[_key(item)] = (rule.align(ids, tokenizer, stops), "regenerated")
        elif rule.sequence == "answer":
            targets[_key(item)] = (rule.align(stored_ids(item, tokenizer), tokenizer, stops), "retokenized")
        else:
            unmatched.append(item)
    targets.update(continued_targets(unmatched, model, tokenizer, max_new_tokens, batch_size, rule))
    return targets


def continued_targets(
    items: list, model, tokenizer, max_new_tokens: int, batch_size: int, rule: TargetRule
) -> dict[tuple[str, str], tuple[Target | None, str]]:
    """Under "eos": the stored outputs continued greedily, without the stop rule, until EOS or max_new_tokens
    (the stored output stopped where its answer was complete, not at EOS). "Step" is located in the stored
    output, which reproduces the stored prediction where the continued text may read on."""
    stops = stop_ids(model, tokenizer)
    heads = {_key(item): stored_ids(item, tokenizer) for item in items}
    continued = _by_template(
        items,
        lambda group, flag: generate_ids(
            model,
            tokenizer,
            [i.prompt for i in group],
            flag,
            max_new_tokens,
            batch_size,
            rule,
            heads=[heads[_key(i)] for i in group],
        ),
    )
    stopped_rule = replace(rule, sequence="answer")
    result = {}
    for item in items:
        stopped = stopped_rule.align(heads[_key(item)], tokenizer, stops)
        target = None if stopped is None else Target(continued[_key(item)], stopped.answer_token)
        result[_key(item)] = (target, "continued")
    return result
