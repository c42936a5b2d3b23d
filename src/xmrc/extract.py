"""Answer extraction from raw generations, under one of two rules (protocol.extraction).

- "first_line" (the default): the first non-empty line, without a leading "Answer:" label. A base model
  prompted up to "Answer:" writes the answer itself on that line; a chat model asked to write
  "Answer: ..." writes the label first. A chat preamble ("Sure, here is the answer:") becomes the answer.
- "answer_label": the text after the first "Answer:" label on any line, so a preamble is skipped; an output
  without any label falls back to its first line (a base model prompted with the cue writes none).

Under both, a label alone on its line ("Answer:" then a newline) takes the next non-empty line. The paper
says only that the answer is "in the form of Answer: {Your Answer}"; the rule is a switch because chat models
differ most in what precedes the label.
"""

from __future__ import annotations

import re

from xmrc.exceptions import check_choice

_LABEL = re.compile(r"^\W*answer\W*?[:\uff1a]\**\s*", re.IGNORECASE)
EXTRACTIONS = ("first_line", "answer_label")
# Under "answer_label" an output with no label yet may still write one: decoding goes on for this many
# complete lines before it stops (a preamble of more lines is cut; the first line is the answer then).
_LINES_BEFORE_LABEL = 3


def check_extraction(rule: str) -> str:
    check_choice("protocol.extraction", rule, EXTRACTIONS)
    return rule


def _lines(raw: str) -> list[tuple[int, str]]:
    """The non-empty lines of `raw` as (offset of the stripped text in raw, stripped text)."""
    lines, offset = [], 0
    for line in raw.splitlines(keepends=True):
        text = line.strip()
        if text:
            lines.append((offset + len(line) - len(line.lstrip()), text))
        offset += len(line)
    return lines


def _after_label(lines: list[tuple[int, str]], index: int) -> tuple[int, int] | None:
    """The answer of line `index`: after its label if it has one, else the line itself; a bare label takes the
    next line."""
    start, text = lines[index]
    match = _LABEL.match(text)
    if not match:
        return start, start + len(text)
    rest = text[match.end() :].strip()
    if rest:
        begin = start + text.index(rest, match.end())
        return begin, begin + len(rest)
    if index + 1 < len(lines):
        start, text = lines[index + 1]
        return start, start + len(text)
    return None


def answer_span(raw: str | None, rule: str = "first_line") -> tuple[int, int] | None:
    """Character span in `raw` of the extracted answer; None for an empty answer."""
    lines = _lines(raw or "")
    if not lines:
        return None
    index = 0
    if check_extraction(rule) == "answer_label":
        index = next((i for i, (_, text) in enumerate(lines) if _LABEL.match(text)), 0)
    return _after_label(lines, index)


def extract_answer(raw: str | None, rule: str = "first_line") -> str:
    span = answer_span(raw, rule)
    return (raw or "")[span[0] : span[1]] if span else ""


def _complete_at(text: str, index: int) -> bool:
    """Whether line `index` of the complete-line list holds a finished answer."""
    lines = [line.strip() for line in text.split("\n")]
    complete = [line for line in lines[:-1] if line]  # lines followed by a newline
    if index >= len(complete):
        return False
    match = _LABEL.match(complete[index])
    if match and not complete[index][match.end() :].strip():
        return index + 1 < len(complete)  # label alone: wait for the next line to end
    return True


def answer_complete(raw: str, rule: str = "first_line") -> bool:
    """True once the generation holds a finished answer under `rule`, so decoding can stop early."""
    text = raw.lstrip()
    if rule == "first_line":
        return _complete_at(text, 0)
    complete = [line.strip() for line in text.split("\n")[:-1] if line.strip()]
    label = next((i for i, line in enumerate(complete) if _LABEL.match(line)), None)
    if label is not None:
        return _complete_at(text, label)
    partial = text.split("\n")[-1].strip()
    return len(complete) >= _LINES_BEFORE_LABEL and not _LABEL.match(partial)
