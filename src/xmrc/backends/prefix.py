"""Prompt order for prefix caching, and how much of each prompt a cache can reuse.

Prompts of one job share long prefixes: the chat header, the task description (v1), the two demonstrations
of a direction, then the test context that 5-10 questions of a paragraph share. Sorting the prompt strings
lexicographically visits them in the depth-first order of their prefix trie, which maximises the summed
common prefix of neighbours, so a prefix cache (vLLM's automatic prefix caching) finds the previous prompt's
blocks still resident. Pure functions: no model, no backend.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise


def prefix_order(prompts: Sequence[str]) -> list[int]:
    """Positions of `prompts` in the order that puts prompts sharing a prefix next to each other (stable)."""
    return sorted(range(len(prompts)), key=lambda i: prompts[i])


def common_prefix_length(a: Sequence, b: Sequence) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


def shared_prefix_share(sequences: Sequence[Sequence], block_size: int = 1) -> float:
    """Share of all elements (tokens or characters) that lie in a prefix shared with the previous sequence.

    `block_size` > 1 counts only whole blocks, as a paged KV cache reuses them (vLLM: 16 tokens).
    """
    total = sum(len(s) for s in sequences)
    if total == 0:
        return 0.0
    shared = 0
    for previous, current in pairwise(sequences):
        length = common_prefix_length(previous, current)
        shared += length - length % block_size
    return shared / total


def prefix_stats(prompts: Sequence[str], templated: bool = False, tokenizer=None) -> dict:
    """How much of a prompt table a prefix cache can reuse, in table order and in prefix order: shares of
    characters and, given a tokenizer (a `transformers` tokenizer or any callable like it), of tokens, also in
    whole 16-token blocks as vLLM caches them."""
    prompts = list(prompts)
    ordered = [prompts[i] for i in prefix_order(prompts)]
    stats = {
        "n": len(prompts),
        "chars_table_order": shared_prefix_share(prompts),
        "chars_prefix_order": shared_prefix_share(ordered),
    }
    if tokenizer is not None:
        tokens = tokenizer(ordered, add_special_tokens=not templated)["input_ids"]
        stats.update(
            tokens_prefix_order=shared_prefix_share(tokens),
            tokens_prefix_order_16_blocks=shared_prefix_share(tokens, 16),
            prompt_tokens=sum(map(len, tokens)),
        )
    return stats
