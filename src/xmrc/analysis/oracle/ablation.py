"""Oracle retrieval by sentence ablation: which context sentence matters most for the generated answer.

An item is one prompt whose test context is cut into sentence units (`xmrc.analysis.oracle.sentences`), plus the
answer the model generated, as the token ids it generated (the *target*). Removing unit i from the prompt
(Captum's TextTemplateInput baseline: the empty string) changes the log probability of the target; the
attribution of unit i is

    attr[0, i]     = log P(target | prompt) - log P(target | prompt without unit i)       ("Sequence")
    attr[1 + t, i] = the same for target token t alone                                     (per token)

which is exactly what Captum's `LLMAttribution(FeatureAblation(model), tokenizer)` returns as `seq_attr`
and `token_attr`. "Step" is the row of the first token of the answer proper (after any "Answer:" label the
model wrote itself), or of the first generated token under protocol.oracle_step: first_step. The oracle is
correct when the gold unit has the strictly largest attribution.

Two interchangeable evaluators compute `attr`:
  CaptumAblation   the reference: Captum 0.9.0, one perturbation per forward pass (and, by Captum's
                   default, one forward per target token with a KV cache)
  BatchedAblation  ours: the n+1 prompts (intact and each unit removed) plus the target go through the model
                   together, teacher-forced, in batches of `batch_size` rows; the token prefix they all
                   share (system prompt, task description, demonstrations, context up to the first unit)
                   is encoded once and its KV cache reused by every row.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Collection, Sequence
from dataclasses import dataclass

import numpy as np

from xmrc.exceptions import XmrcError
from xmrc.extract import answer_span

# --- The target: generated token ids and where the answer starts in them ------------------------------


@dataclass(frozen=True)
class Target:
    ids: list[int]  # generated tokens from the first through the end of the "Sequence" target
    answer_token: int  # index in `ids` of the "Step" target token


# protocol.oracle_sequence: where the "Sequence" target ends. protocol.oracle_step: which token is "Step".
SEQUENCE_TARGETS = ("eos", "answer")
STEP_TARGETS = ("answer_token", "first_step")


def through_first_stop(ids: Sequence[int], stops: Collection[int]) -> list[int]:
    """`ids` through their first end-of-sequence id, that id included. What follows it is never generation: a
    batch fills a row that has ended with pad ids (which may be the eos id itself), so keeping it would make
    the target depend on which prompts shared the batch."""
    ids = list(ids)
    for index, token in enumerate(ids):
        if token in stops:
            return ids[: index + 1]
    return ids


def align_target(
    ids: Sequence[int],
    tokenizer,
    extraction: str = "first_line",
    sequence: str = "answer",
    step: str = "answer_token",
    stops: Collection[int] = (),
) -> Target | None:
    """The target of generated `ids` (cut after the first of the `stops`, the end-of-sequence ids), with the
    answer located. "Sequence" (protocol.oracle_sequence) runs through the first EOS under "eos" (footnote
    6: the whole generation, until EOS; through the last token when none came) or through the last token of
    the extracted answer under "answer". "Step" (protocol.oracle_step) is the answer's first token under
    "answer_token" (after any "Answer:" label the model wrote itself) or the first generated token under
    "first_step". None for an empty answer, or if tokens and text cannot be aligned (a decoding that does
    not grow prefix by prefix)."""
    ids = through_first_stop(ids, stops)
    text = tokenizer.decode(ids, skip_special_tokens=True)
    span = answer_span(text, extraction)
    if span is None:
        return None
    head, whole = text[: span[0]], text[: span[1]]
    answer_token = None
    for m in range(1, len(ids) + 1):
        decoded = tokenizer.decode(ids[:m], skip_special_tokens=True)
        if answer_token is None and not head.startswith(decoded):
            answer_token = m - 1  # token m-1 is the first to reach past the text before the answer
        if decoded.startswith(whole):
            if answer_token is None:
                return None
            return Target(ids if sequence == "eos" else ids[:m], 0 if step == "first_step" else answer_token)
    return None


# --- Items and their ablated prompts ---------------------------------------------------------------------


@dataclass(frozen=True)
class AblationItem:
    """A prompt split as `before + units[0] + ... + units[n-1] + after`."""

    before: str
    units: tuple[str, ...]
    after: str
    templated: bool  # chat-templated prompts carry their own special tokens: no BOS is added
    target: Target

    @property
    def prompt(self) -> str:
        return self.before + "".join(self.units) + self.after

    def template(self, *units: str) -> str:
        return self.before + "".join(units) + self.after

    def prompts(self) -> list[str]:
        """The intact prompt, then the prompt without unit i for every i."""
        kept = [self.template(*self.units)]
        for i in range(len(self.units)):
            kept.append(self.template(*self.units[:i], *self.units[i + 1 :]))
        return kept


def item_from_prompt(
    prompt: str, context_start: int, unit_spans: Sequence[tuple[int, int]], templated: bool, target: Target
) -> AblationItem:
    """An item from a prompt string, the context's offset in it and unit spans relative to the context."""
    units = tuple(prompt[context_start + s : context_start + e] for s, e in unit_spans)
    context_end = context_start + (unit_spans[-1][1] if unit_spans else 0)
    return AblationItem(prompt[:context_start], units, prompt[context_end:], templated, target)


def attribution_from_log_probs(log_probs: np.ndarray) -> np.ndarray:
    """(n+1, T) per-token log probs (row 0 intact) -> (1+T, n) attributions, Captum's layout."""
    token_rows = log_probs[0][None, :] - log_probs[1:]  # (n, T)
    sequence = token_rows.sum(axis=1, keepdims=True)  # (n, 1)
    return np.concatenate([sequence, token_rows], axis=1).T


def encode(tokenizer, text: str, templated: bool) -> list[int]:
    """Prompt ids exactly as the generation stage made them."""
    return tokenizer(text, add_special_tokens=not templated)["input_ids"]


# --- Evaluators ------------------------------------------------------------------------------------------


class BatchedAblation:
    """All ablated prompts of an item in batched teacher-forced passes over a shared-prefix KV cache."""

    name = "batched"

    def __init__(self, model, tokenizer, batch_size: int = 16, share_prefix: bool = True):
        self.model, self.tokenizer = model, tokenizer
        self.batch_size, self.share_prefix = batch_size, share_prefix
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0

    def attribute(self, item: AblationItem) -> np.ndarray:
        prompts = [encode(self.tokenizer, text, item.templated) for text in item.prompts()]
        return attribution_from_log_probs(self.log_probs(prompts, item.target.ids))

    def log_probs(self, prompts: list[list[int]], target: list[int]) -> np.ndarray:
        """(rows, T) log probabilities of the target tokens after each prompt."""
        import torch

        with torch.inference_mode():
            prefix_length = self._shared_prefix(prompts) if self.share_prefix else 0
            cache = None
            device = self.model.device
            if prefix_length:
                prefix = torch.tensor([prompts[0][:prefix_length]], device=device)
                cache = self.model(input_ids=prefix, use_cache=True).past_key_values
            rows = []
            for first in range(0, len(prompts), self.batch_size):
                chunk = prompts[first : first + self.batch_size]
                rows.append(self._chunk_log_probs(chunk, target, prefix_length, cache))
            return np.concatenate(rows, axis=0)

    @staticmethod
    def _shared_prefix(prompts: list[list[int]]) -> int:
        """Tokens every prompt starts with, leaving each prompt's last token to the batched pass (its
        logits predict the first target token)."""
        first = prompts[0]
        length = min(len(p) for p in prompts) - 1
        for other in prompts[1:]:
            same = 0
            limit = min(length, len(other))
            while same < limit and other[same] == first[same]:
                same += 1
            length = same
        return max(length, 0)

    def _chunk_log_probs(self, chunk, target, prefix_length, cache) -> np.ndarray:
        import torch

        device = self.model.device
        suffixes = [p[prefix_length:] + target for p in chunk]
        width = max(len(s) for s in suffixes)
        # Right padding needs no attention mask: causal attention never lets a real token see a later pad.
        batch = torch.full((len(chunk), width), self.pad_id, dtype=torch.long, device=device)
        for row, suffix in enumerate(suffixes):
            batch[row, : len(suffix)] = torch.tensor(suffix, device=device)
        steps = torch.arange(len(target))
        # Row r predicts target token t at position len(prompt_r) - 1 + t (relative to the suffix).
        positions = torch.stack([len(p) - prefix_length - 1 + steps for p in chunk])  # (rows, T)
        keep = torch.unique(positions)  # the few positions whose logits are needed, sorted
        # The index stays on the CPU: with device_map the last hidden states may live on another GPU.
        options = {"input_ids": batch, "logits_to_keep": keep}
        if cache is not None:
            rows_cache = copy.deepcopy(cache)
            rows_cache.batch_repeat_interleave(len(chunk))
            options["past_key_values"] = rows_cache
        logits = self.model(**options, use_cache=cache is not None).logits
        columns = torch.searchsorted(keep, positions).to(logits.device)
        picked = logits.gather(1, columns[:, :, None].expand(-1, -1, logits.shape[-1]))  # (rows, T, V)
        log_probs = torch.log_softmax(picked.float(), dim=-1)
        ids = torch.tensor(target, device=logits.device)[None, :, None].expand(len(chunk), -1, 1)
        return log_probs.gather(2, ids)[:, :, 0].cpu().numpy()


class _PromptTokenizer:
    """The model's tokenizer as Captum sees it: prompts encode exactly as in generation (no second BOS
    for chat-templated prompts)."""

    def __init__(self, tokenizer, templated: bool):
        self._tokenizer, self._templated = tokenizer, templated

    def encode(self, text, add_special_tokens=None, **options):
        if add_special_tokens is None:
            add_special_tokens = not self._templated
        return self._tokenizer.encode(text, add_special_tokens=add_special_tokens, **options)

    def decode(self, ids, **options):
        # Only Captum's token pretty-printer decodes (cosmetic, unused here). It indexes past the end when a
        # target ends in a lone fragment of a multi-byte character, which it recognises by U+FFFD.
        return self._tokenizer.decode(ids, **options).replace("\ufffd", "?")

    def __call__(self, *args, **options):
        return self._tokenizer(*args, **options)

    def __getattr__(self, name):
        return getattr(self._tokenizer, name)


class CaptumAblation:
    """Captum's LLMAttribution with FeatureAblation over a TextTemplateInput of the sentence units."""

    name = "captum"

    def __init__(self, model, tokenizer, forward_in_tokens: bool = True):
        self.model, self.tokenizer = model, tokenizer
        self.forward_in_tokens = forward_in_tokens

    def attribute(self, item: AblationItem) -> np.ndarray:
        import torch
        from captum.attr import FeatureAblation, LLMAttribution, TextTemplateInput

        attribution = LLMAttribution(FeatureAblation(self.model), _PromptTokenizer(self.tokenizer, item.templated))
        features = TextTemplateInput(template=item.template, values=list(item.units))
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Captum's notes on pretty-printing target tokens, not results
            result = attribution.attribute(
                features, target=torch.tensor(item.target.ids), forward_in_tokens=self.forward_in_tokens
            )
        return torch.cat([result.seq_attr[None, :], result.token_attr], dim=0).float().cpu().numpy()


def create_evaluator(implementation: str, model, tokenizer, batch_size: int = 16):
    if implementation == "batched":
        return BatchedAblation(model, tokenizer, batch_size)
    if implementation == "captum":
        return CaptumAblation(model, tokenizer)
    raise XmrcError(f"unknown oracle implementation '{implementation}' (expected batched or captum)")


# --- The oracle decision ---------------------------------------------------------------------------------


def top_unit(scores: Sequence[float]) -> int | None:
    """Index of the strictly largest score; None on a tie for the top (no unit singled out)."""
    scores = np.asarray(scores, dtype=float)
    if scores.size == 0:
        return None
    best = int(np.argmax(scores))
    if np.sum(scores == scores[best]) > 1:
        return None
    return best
