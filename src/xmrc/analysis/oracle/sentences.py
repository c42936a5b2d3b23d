"""Sentence units of XQuAD contexts: the features the oracle attribution perturbs.

A context is cut into contiguous units that cover it exactly (each unit keeps its trailing whitespace, the
first also any leading whitespace), so removing a unit leaves clean text and joining all units gives the
context back character for character. The unit holding the gold answer (from `answer_start`) is marked;
when the answer crosses a sentence boundary, the sentences it touches are merged into one unit and the
item is reported, so it is never scored against half an answer.

Splitting is rule-based and language-aware (no model, no download):
  space-delimited languages   after . ! ? … (and ; for Greek, । for Hindi, ؟ for Arabic), closing quotes or
                              brackets, then whitespace; not after known abbreviations, single-letter
                              initials, or (de, tr) ordinal numbers such as "10."
  zh                          after 。！？ and closing quotes, no whitespace needed
  th                          at whitespace runs (Thai separates sentences and clauses by spaces)

Table written by `xmrc oracle-sentences` (one row per unit):
    id              str   XQuAD item id
    lang            str   language of the context
    unit            int   0-based position of the unit in the context
    start, end      int   character offsets of the unit in the context
    is_gold         bool  the unit holds the gold answer span
    sentences       int   sentences merged into this unit (> 1 only where the answer crossed a boundary)
Items whose answer could not be located at `answer_start` get no gold unit and are reported.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from itertools import pairwise

import pandas as pd

UNIT_COLUMNS = ["id", "lang", "unit", "start", "end", "is_gold", "sentences"]
PROBLEM_COLUMNS = ["id", "lang", "kind", "detail"]

_CLOSERS = "\"'\u201d\u2019\u00bb)\\]\u300d\u300f\uff09"
_TERMINATORS = {
    "default": ".!?\u2026",
    "el": ".!?\u2026;\u037e",
    "hi": ".!?\u2026\u0964\u0965",
    "ar": ".!?\u2026\u061f",
}
_CJK_TERMINATORS = "\u3002\uff01\uff1f!?"
# Lower-case forms of abbreviations after which a period does not end a sentence.
_ABBREVIATIONS = frozenset(
    """
mr mrs ms dr prof sr jr st mt ft vs v etc e.g i.e cf al approx ca c no nos vol fig figs gen col lt sgt capt
cmdr adm gov sen rep rev hon pres inc ltd co corp bros dept univ est jan feb mar apr jun jul aug sep sept
oct nov dec u.s u.k u.n a.d b.c p.m a.m ph.d m.d b.a m.a op pp ed eds
bzw z.b d.h usw ca vgl nr s
sra srta dña ee.uu
""".split()  # noqa: SIM905 (a word list reads better as text)
)
_ORDINAL_DOT_LANGS = frozenset({"de", "tr"})


@dataclass(frozen=True)
class Unit:
    start: int
    end: int
    sentences: int = 1


def _boundary_pattern(lang: str) -> re.Pattern:
    terminators = re.escape(_TERMINATORS.get(lang, _TERMINATORS["default"]))
    # A run of terminators, optional closing quotes/brackets, then the whitespace that ends the unit.
    return re.compile(rf"[{terminators}]+[{re.escape(_CLOSERS)}]*(\s+)")


def _word_before(text: str, end: int) -> str:
    """The whitespace-delimited token that ends at `end` (the terminator's position), without brackets."""
    start = end
    while start > 0 and not text[start - 1].isspace():
        start -= 1
    return text[start:end].lstrip("(\"'\u201c\u2018[")


def _is_false_stop(text: str, stop: int, lang: str) -> bool:
    """A period at `stop` that belongs to an abbreviation, an initial or an ordinal number."""
    if text[stop] != ".":
        return False
    word = _word_before(text, stop)
    if not word:
        return False
    if word.lower() in _ABBREVIATIONS:
        return True
    if len(word) == 1 and word.isalpha() and word.isupper():
        return True  # an initial: "J. R. R. Tolkien"
    return lang in _ORDINAL_DOT_LANGS and word.isdigit()  # "im 10. Jahrhundert"


def _starts_sentence(text: str, position: int, terminators: str) -> bool:
    """Whether the text after a boundary can open a sentence: not a lower-case continuation, and not the
    next dot of a spaced ellipsis (". . .")."""
    if position >= len(text):
        return False
    char = text[position]
    return not char.islower() and char not in terminators


def _spaced_cuts(text: str, lang: str) -> list[int]:
    cuts = []
    terminators = _TERMINATORS.get(lang, _TERMINATORS["default"])
    for match in _boundary_pattern(lang).finditer(text):
        following = match.end()
        if not _starts_sentence(text, following, terminators):
            continue
        if _is_false_stop(text, match.start(), lang):
            continue
        cuts.append(following)
    return cuts


def _cjk_cuts(text: str) -> list[int]:
    pattern = re.compile(rf"[{re.escape(_CJK_TERMINATORS)}]+[{re.escape(_CLOSERS)}\u201d\u300d]*\s*")
    return [m.end() for m in pattern.finditer(text) if m.end() < len(text)]


def _thai_cuts(text: str) -> list[int]:
    return [m.end() for m in re.finditer(r"\s+", text) if m.end() < len(text)]


def split_sentences(text: str, lang: str) -> list[Unit]:
    """Contiguous units covering `text` exactly, in order. Empty text gives no units."""
    if not text:
        return []
    if lang == "zh":
        cuts = _cjk_cuts(text)
    elif lang == "th":
        cuts = _thai_cuts(text)
    else:
        cuts = _spaced_cuts(text, lang)
    bounds = [0] + [c for c in cuts if 0 < c < len(text)] + [len(text)]
    return [Unit(s, e) for s, e in pairwise(bounds) if e > s]


@dataclass(frozen=True)
class ContextUnits:
    units: list[Unit]
    gold: int | None  # index of the gold unit; None when the answer could not be located
    problem: tuple[str, str] | None  # (kind, detail) to report, if any


def _locate_answer(context: str, answer: str, answer_start: int) -> int | None:
    if answer and context[answer_start : answer_start + len(answer)] == answer:
        return answer_start
    return None


def context_units(context: str, answer: str, answer_start: int, lang: str) -> ContextUnits:
    """Sentence units of one context with the gold unit marked; sentences the answer spans are merged."""
    units = split_sentences(context, lang)
    start = _locate_answer(context, answer, answer_start)
    if start is None:
        return ContextUnits(units, None, ("answer_not_located", f"answer_start {answer_start}: {answer!r}"))
    end = start + len(answer)
    # The answer's last character decides the last unit: a unit's trailing whitespace is not answer text.
    touched = [i for i, u in enumerate(units) if u.start < end and start < u.end]
    first, last = touched[0], touched[-1]
    if first == last:
        return ContextUnits(units, first, None)
    merged = Unit(units[first].start, units[last].end, sum(u.sentences for u in units[first : last + 1]))
    units = units[:first] + [merged] + units[last + 1 :]
    detail = f"answer {answer!r} spans sentences {first}-{last}; merged"
    return ContextUnits(units, first, ("answer_crosses_boundary", detail))


def units_table(table: pd.DataFrame, languages: list[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Units of every (id, lang) context of `languages` in an XQuAD table, and the problems found."""
    rows, problems = [], []
    for row in table[table["lang"].isin(languages)].itertuples(index=False):
        result = context_units(row.context, row.answer_text, int(row.answer_start), row.lang)
        for index, unit in enumerate(result.units):
            rows.append((row.id, row.lang, index, unit.start, unit.end, index == result.gold, unit.sentences))
        if result.problem:
            problems.append((row.id, row.lang, *result.problem))
    return pd.DataFrame(rows, columns=UNIT_COLUMNS), pd.DataFrame(problems, columns=PROBLEM_COLUMNS)
