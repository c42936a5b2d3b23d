"""Where the answer starts in a model's output: the token both layer-wise analyses look at.

The paper explains "the first token of the answer" (MRD) and compares "the last input token (predicting the
start of the answer)" (hidden states). A base model's prompt ends with "Answer:", so its first generated
token already is the answer's; a chat model following the instruction writes the label "Answer:" first, and
its first generated token is the label's. So the analyses read the model's stored output (the generation
stage's `raw_output`), teacher-force the tokens it generated before the answer (the *forced prefix*, e.g.
"Answer:"), and look at the next position: its input token is the last one before the answer, and the token
it has to predict is the answer's first token, as for the oracle's "Step" target (`xmrc.analysis.oracle.ablation`).

The stored text is tokenised again (the generation stage keeps text, not ids); the first token whose
decoding reaches past the text before the extracted answer is the answer's first token.

Empty answers: a blank output or a label with nothing after it has no answer token. Such an item is not
explained (relevance rows with status `empty_answer` and no MRD) and has no last-token hidden state
(NaN, left out of that similarity), rather than falling back to some other token: the analyses then
measure the answer, or nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

from xmrc.extract import answer_span, extract_answer

ANSWER, EMPTY_ANSWER, UNALIGNED = "answer", "empty_answer", "unaligned"


@dataclass(frozen=True)
class AnswerStart:
    status: str  # answer | empty_answer (nothing to explain) | unaligned (tokens do not reproduce the text)
    prefix_ids: tuple[int, ...] = ()  # generated tokens before the answer's first token (teacher-forced)
    prefix_text: str = ""  # their decoding, e.g. "Answer:" for a chat model, "" for a base model
    target_id: int = -1  # the answer's first token (-1: none)
    target_text: str = ""

    @property
    def explained(self) -> bool:
        return self.status == ANSWER


def answer_start(tokenizer, raw_output: str | None, extraction: str = "first_line") -> AnswerStart:
    """The forced prefix and the answer's first token of one stored output (see the module docstring), the
    answer found under `extraction` (protocol.extraction)."""
    ids = tokenizer(raw_output or "", add_special_tokens=False)["input_ids"]
    text = tokenizer.decode(ids, skip_special_tokens=True)
    if not extract_answer(text, extraction):
        return AnswerStart(EMPTY_ANSWER)
    span = answer_span(text, extraction)
    if span is None:
        return AnswerStart(UNALIGNED)
    head = text[: span[0]]
    for m in range(1, len(ids) + 1):
        if not head.startswith(tokenizer.decode(ids[:m], skip_special_tokens=True)):
            prefix = tuple(ids[: m - 1])
            return AnswerStart(
                ANSWER,
                prefix,
                tokenizer.decode(list(prefix), skip_special_tokens=True),
                int(ids[m - 1]),
                tokenizer.decode([ids[m - 1]]),
            )
    return AnswerStart(UNALIGNED)
