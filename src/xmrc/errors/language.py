"""Language errors with Lingua: E_lang(en, x) = share of W where Lang(reference) = en and Lang(prediction) = x.

The detector knows the 12 XQuAD languages (protocol.lingua_languages "xquad", the default) or every language
Lingua knows ("all": an answer in, say, Portuguese is then Portuguese, never a language error; the paper
says only "Lingua"). It runs in Lingua's high-accuracy mode (its default) and is built
once per job; texts are detected in one parallel batch, each distinct string once. Text Lingua cannot decide
(numbers, empty strings, some names) gets the code `und` (ISO 639 "undetermined"): it is counted and
reported on its own, never as a language error.

The intruding language of a direction is the one a wrong answer may slip into: the question's language for
en-x (the paper's definition), English for x-x (the prompt's instructions are English there); en-en has none,
so its language error is undefined.

Output of the `detect-language` command (language.parquet): KEYS + reference_lang, prediction_lang,
intruding_lang (null for en-en), language_error (bool).
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import pandas as pd

from xmrc import LANGUAGES
from xmrc.errors import KEYS

UNDECIDED = "und"
LINGUA_LANGUAGES = ("xquad", "all")
LANGUAGE_COLUMNS = KEYS + ["reference_lang", "prediction_lang", "intruding_lang", "language_error"]


def build_detector(languages: Sequence[str] | str = LANGUAGES, threads: int | None = None):
    """A Lingua detector restricted to `languages` ("all": every language Lingua knows), high-accuracy mode.
    `threads` caps Lingua's worker pool (it reads RAYON_NUM_THREADS when its pool starts, i.e. at the first
    parallel call of the process)."""
    if threads:
        os.environ["RAYON_NUM_THREADS"] = str(threads)
    from lingua import IsoCode639_1, LanguageDetectorBuilder

    if languages == "all":
        return LanguageDetectorBuilder.from_all_languages().build()
    codes = [getattr(IsoCode639_1, lang.upper()) for lang in languages]
    return LanguageDetectorBuilder.from_iso_codes_639_1(*codes).build()


def detect(detector, texts: Sequence[str]) -> list[str]:
    """ISO 639-1 code (lower case) of each text, `und` where Lingua cannot decide; one batch, each distinct
    string detected once."""
    cleaned = [("" if text is None else str(text)).strip() for text in texts]
    distinct = list(dict.fromkeys(t for t in cleaned if t))
    found = detector.detect_languages_in_parallel_of(distinct) if distinct else []
    code = {
        text: (lang.iso_code_639_1.name.lower() if lang is not None else UNDECIDED)
        for text, lang in zip(distinct, found)
    }
    return [code.get(text, UNDECIDED) for text in cleaned]


def intruding_language(context_lang: str, question_lang: str) -> str | None:
    answer_lang = context_lang  # answers are copied from the context
    if question_lang != answer_lang:
        return question_lang
    return "en" if answer_lang != "en" else None


def language_errors(wrong: pd.DataFrame, detector) -> pd.DataFrame:
    """Per wrong answer: detected languages of reference and prediction and whether it is a language error
    (reference in the answer language, prediction in the intruding language)."""
    languages = detect(detector, wrong["gold"].tolist() + wrong["prediction"].tolist())
    out = wrong[KEYS].copy()
    out["reference_lang"] = languages[: len(wrong)]
    out["prediction_lang"] = languages[len(wrong) :]
    out["intruding_lang"] = [intruding_language(c, q) for c, q in zip(wrong["context_lang"], wrong["question_lang"])]
    out["language_error"] = (
        (out["reference_lang"] == wrong["context_lang"].to_numpy()) & (out["prediction_lang"] == out["intruding_lang"])
    ).astype(bool)
    return out[LANGUAGE_COLUMNS].reset_index(drop=True)
