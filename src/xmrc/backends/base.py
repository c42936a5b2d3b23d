from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class Generation:
    text: str
    prompt_tokens: int
    output_tokens: int


# A sequence's text so far in, whether its answer is complete (generation may stop there).
StopRule = Callable[[str], bool]


class Backend(Protocol):
    """Required: `name` and `generate`. Optional (used when present): `describe()` -> JSON-able dict of the
    backend's name, library versions and output-relevant settings (recorded with every output and part of
    the resume fingerprint), and `tokenize(prompts, templated)` -> token id lists (prefix statistics)."""

    name: str

    def generate(
        self, prompts: Sequence[str], max_new_tokens: int, templated: bool, stop_when: StopRule | None = None
    ) -> list[Generation]:
        """Greedy continuations of `prompts`, in the same order. `templated` prompts already hold the chat
        template's special tokens, so no BOS is added; `stop_when(text)` may end a sequence early."""
        ...


def longest_first_batches(lengths: Sequence[int], batch_size: int) -> list[list[int]]:
    """Positions of the inputs of `lengths` in batches of `batch_size`, longest first: neighbours have similar
    lengths, so left padding stays small, and a batch that does not fit in memory fails first."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    return [order[first : first + batch_size] for first in range(0, len(order), batch_size)]
