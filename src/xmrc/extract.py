"""Answer extraction from raw generations: the text after "Answer:" on the first line.

Base models are prompted with a trailing "Answer:", so their first line is the answer itself; chat models
are asked to write "Answer: ...". A label alone on its line ("Answer:" then a newline) takes the next line.
"""

from __future__ import annotations

import re

_LABEL = re.compile(r"^\W*answer\W*?[:\uff1a]\**\s*", re.IGNORECASE)


def _lines(raw: str) -> list[str]:
    return [line.strip() for line in raw.strip().splitlines() if line.strip()]


def extract_answer(raw: str | None) -> str:
    lines = _lines(raw or "")
    if not lines:
        return ""
    first = lines[0]
    match = _LABEL.match(first)
    if not match:
        return first
    rest = first[match.end() :].strip()
    if rest:
        return rest
    return lines[1] if len(lines) > 1 else ""


def answer_complete(raw: str) -> bool:
    """True once the generation holds a finished answer line, so decoding can stop early."""
    text = raw.lstrip()
    if "\n" not in text:
        return False
    first, rest = text.split("\n", 1)
    match = _LABEL.match(first.strip())
    if match and not first.strip()[match.end() :].strip():
        return "\n" in rest.lstrip() and bool(rest.strip())  # label alone: wait for the next line to end
    return True
