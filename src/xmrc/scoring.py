"""Answer scoring: token F1 and exact match (EM) of a prediction against one gold answer.

Both metrics normalise each string (lowercase, drop punctuation, drop articles, tokenise), then
EM = normalised token sequences equal, F1 = harmonic mean of precision and recall of the token
multisets. Two normalisations are offered:

``"squad"``
    The official SQuAD v1.1 script, exactly: ASCII punctuation, English articles a/an/the,
    whitespace tokens, whatever ``lang`` is (``lang`` is still validated).
``"mlqa"`` (default)
    The official MLQA v1 script, exactly, for en es de vi hi zh (all Unicode ``P*`` punctuation
    plus ASCII punctuation; per-language articles; CJK characters as single tokens for zh),
    extended to the other XQuAD languages:

    ====  ============================================  ===========================================
    lang  tokens                                        articles removed
    ====  ============================================  ===========================================
    en    whitespace                                    a an the                           (MLQA)
    es    whitespace                                    un una unos unas el la los las     (MLQA)
    de    whitespace                                    ein eine einen einem eines einer
                                                        der die das den dem des            (MLQA)
    vi    whitespace                                    của là cái chiếc những             (MLQA)
    hi    whitespace                                    none                               (MLQA)
    zh    each U+4E00-U+9FA5 char one token,            none                               (MLQA)
          the rest whitespace-split
    ar    whitespace                                    prefix ال of a token longer than ال (fixed)
    el    whitespace                                    none                               (ours)
    ro    whitespace                                    none                               (ours)
    ru    whitespace                                    none                               (ours)
    tr    whitespace                                    none                               (ours)
    th    each Thai char (U+0E00-U+0E7F) one token,     none                               (ours)
          the rest whitespace-split
    ====  ============================================  ===========================================

    ar: MLQA's pattern ``\\sال^|ال`` replaces *every* ``ال`` (also inside words) with a space;
    we instead delete ``ال`` only at the start of a whitespace-delimited token that goes on
    after it (الكتاب -> كتاب; عالم, والكتاب and a bare ال stay). el/ro/ru/tr get no article
    removal: Greek articles double as pronouns and Romanian/Turkish mark definiteness by suffix,
    so no safe word list exists. th: Thai is written without spaces between words, so like zh
    it is scored on characters (code points, so vowel and tone marks count on their own).

Edge cases follow the official scripts: F1 is 0 whenever the two sides share no token, which
includes one or both normalising to nothing (e.g. "The." vs "a": EM 1, F1 0, as in SQuAD v1.1).
One deliberate exception: an empty, whitespace-only, None or NaN prediction scores 0 on both.
"""

from __future__ import annotations

import functools
import math
import re
import string
import sys
import unicodedata
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

import pandas as pd

__all__ = ["LANGUAGES", "NORMALIZATIONS", "exact_match", "f1", "score_pairs", "score_table"]

LANGUAGES = ("en", "de", "es", "vi", "zh", "hi", "ar", "el", "ro", "ru", "th", "tr")
NORMALIZATIONS = ("mlqa", "squad")

_MLQA_ARTICLES = {
    "en": (r"\b(a|an|the)\b", " "),
    "es": (r"\b(un|una|unos|unas|el|la|los|las)\b", " "),
    "vi": (r"\b(của|là|cái|chiếc|những)\b", " "),
    "de": (r"\b(ein|eine|einen|einem|eines|einer|der|die|das|den|dem|des)\b", " "),
    "ar": (r"(?<!\S)ال(?=\S)", ""),
}
# Character ranges whose characters are tokens of their own (MLQA: zh only).
_CHAR_TOKEN_LANGS = {"zh": "\u4e00-\u9fa5", "th": "\u0e00-\u0e7f"}


@dataclass(frozen=True)
class _Normalizer:
    delete_punct: dict
    articles: re.Pattern | None = None
    article_repl: str = " "
    char_tokens: re.Pattern | None = None

    def tokens(self, text: str) -> tuple[str, ...]:
        text = text.lower().translate(self.delete_punct)
        if self.articles is not None:
            text = self.articles.sub(self.article_repl, text)
        if self.char_tokens is not None:
            # The tokens of MLQA's mixed_segmentation (punctuation is already gone) in one pass;
            # \s is exactly what str.split() splits on.
            return tuple(self.char_tokens.findall(text))
        return tuple(text.split())


@functools.cache
def _normalizer(normalization: str, lang: str) -> _Normalizer:
    if normalization not in NORMALIZATIONS:
        raise ValueError(f"unknown normalization {normalization!r}; expected one of {NORMALIZATIONS}")
    if lang not in LANGUAGES:
        raise ValueError(f"unknown language {lang!r}; expected one of {LANGUAGES}")
    if normalization == "squad":
        if lang != "en":
            return _normalizer("squad", "en")  # one shared instance: SQuAD ignores the language
        return _Normalizer(dict.fromkeys(map(ord, string.punctuation)), re.compile(r"\b(a|an|the)\b"))
    if lang != "en":
        # Every language shares the (large) MLQA punctuation table built for en.
        punct = _normalizer("mlqa", "en").delete_punct
    else:
        # As MLQA: every Unicode P* code point below sys.maxunicode, plus ASCII punctuation.
        punct = {i: None for i in range(sys.maxunicode) if unicodedata.category(chr(i)).startswith("P")}
        punct.update(dict.fromkeys(map(ord, string.punctuation)))
    pattern, repl = _MLQA_ARTICLES.get(lang, (None, " "))
    chars = _CHAR_TOKEN_LANGS.get(lang)
    return _Normalizer(
        punct,
        re.compile(pattern) if pattern else None,
        repl,
        re.compile(f"[{chars}]|[^\\s{chars}]+") if chars else None,
    )


def _is_blank(prediction) -> bool:
    # None and pandas' NaN both mean "no answer"; anything else must be a string.
    if prediction is None or (isinstance(prediction, float) and math.isnan(prediction)):
        return True
    return not prediction.strip()


def _em_f1(pred: tuple[str, ...], gold: tuple[str, ...]) -> tuple[float, float]:
    if pred == gold:
        return 1.0, (1.0 if pred else 0.0)
    # Size of the multiset intersection; cheaper than sum((Counter(pred) & Counter(gold)).values()).
    unused, num_same = Counter(gold), 0
    for token in pred:
        if unused.get(token, 0) > 0:
            unused[token] -= 1
            num_same += 1
    if num_same == 0:
        return 0.0, 0.0
    # Same float operations as the official scripts, so results match bit for bit.
    precision = 1.0 * num_same / len(pred)
    recall = 1.0 * num_same / len(gold)
    return 0.0, (2 * precision * recall) / (precision + recall)


def _score(prediction, gold, normalizer_tokens) -> tuple[float, float]:
    if _is_blank(prediction):
        return 0.0, 0.0
    return _em_f1(normalizer_tokens(prediction), normalizer_tokens("" if gold is None else gold))


def f1(prediction: str | None, gold: str, lang: str = "en", normalization: str = "mlqa") -> float:
    """Token F1 in [0, 1] of ``prediction`` against ``gold`` (see the module docstring)."""
    return _score(prediction, gold, _normalizer(normalization, lang).tokens)[1]


def exact_match(prediction: str | None, gold: str, lang: str = "en", normalization: str = "mlqa") -> float:
    """1.0 if ``prediction`` and ``gold`` normalise to the same tokens, else 0.0."""
    return _score(prediction, gold, _normalizer(normalization, lang).tokens)[0]


def score_pairs(
    predictions: Iterable[str | None],
    golds: Iterable[str],
    lang: str = "en",
    normalization: str = "mlqa",
) -> tuple[list[float], list[float]]:
    """(EM list, F1 list) for aligned predictions and golds; same numbers as ``exact_match``/``f1``.

    Normalised strings are memoised for the duration of the call: each gold is scored against the
    answers of many models, and models often give the same answer.
    """
    predictions, golds = list(predictions), list(golds)
    if len(predictions) != len(golds):
        raise ValueError(f"{len(predictions)} predictions but {len(golds)} golds")
    tokens = functools.lru_cache(maxsize=None)(_normalizer(normalization, lang).tokens)
    scores = [_score(p, g, tokens) for p, g in zip(predictions, golds)]
    return [em for em, _ in scores], [f for _, f in scores]


SETTING_COLUMNS = ["model", "shots", "prompt_format"]
# What scoring reads of a generation table (xmrc.generation.GENERATION_COLUMNS holds them all).
GENERATION_COLUMNS = [*SETTING_COLUMNS, "id", "context_lang", "question_lang", "answer_lang", "gold", "prediction"]
SCORE_COLUMNS = [*SETTING_COLUMNS, "context_lang", "question_lang", "id", "em", "f1"]


def score_table(generations: pd.DataFrame, normalization: str = "mlqa") -> pd.DataFrame:
    """SCORE_COLUMNS of a generation table (GENERATION_COLUMNS): each prediction scored against its gold in
    the language of its answer, rows in the table's order."""
    frames = []
    for lang, group in generations.groupby("answer_lang", sort=False):
        em, f1 = score_pairs(
            group["prediction"].tolist(), group["gold"].tolist(), lang=lang, normalization=normalization
        )
        frames.append(group.assign(em=em, f1=f1))
    scored = pd.concat(frames).sort_index() if frames else generations.assign(em=[], f1=[])
    return scored[SCORE_COLUMNS]
