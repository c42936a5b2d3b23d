"""Language errors with the real Lingua detector (12 XQuAD languages, high accuracy)."""

import pandas as pd
import pytest

from xmrc.errors import KEYS
from xmrc.errors.language import (
    UNDECIDED,
    build_detector,
    detect,
    intruding_language,
    language_errors,
)

ENGLISH = "The Normans gave their name to Normandy, a region in France."
GERMAN = "Die Normannen gaben der Normandie, einer Region in Frankreich, ihren Namen."
RUSSIAN = "Норманны дали своё имя Нормандии, региону во Франции."


@pytest.fixture(scope="module")
def detector():
    return build_detector()


def test_detects_languages_and_leaves_undecidable_text_undecided(detector):
    texts = [ENGLISH, GERMAN, RUSSIAN, "1066", "", "   ", None, "???"]
    assert detect(detector, texts) == ["en", "de", "ru"] + [UNDECIDED] * 5


def test_detector_knows_only_the_xquad_languages(detector):
    french = "Les Normands ont donné leur nom à la Normandie, une région de France."
    assert detect(detector, [french])[0] in {"en", "de", "es", "vi", "zh", "hi", "ar", "el", "ro", "ru", "th", "tr"}


def test_repeated_texts_get_the_same_answer(detector):
    assert detect(detector, [GERMAN, ENGLISH, GERMAN]) == ["de", "en", "de"]


def test_intruding_language_per_direction():
    assert intruding_language("en", "de") == "de"  # en-x: the question's language
    assert intruding_language("de", "de") == "en"  # x-x: English, the instructions' language
    assert intruding_language("en", "en") is None


def wrong(rows):
    return pd.DataFrame(
        [
            {
                "model": "M",
                "shots": 2,
                "prompt_format": "v1",
                "context_lang": c,
                "question_lang": q,
                "id": str(i),
                "gold": g,
                "prediction": p,
            }
            for i, (c, q, g, p) in enumerate(rows)
        ]
    )


def test_language_error_needs_english_reference_and_prediction_in_question_language(detector):
    result = language_errors(
        wrong(
            [
                ("en", "de", ENGLISH, GERMAN),  # the paper's language error
                ("en", "de", ENGLISH, RUSSIAN),  # a third language: not E_lang(en, de)
                ("en", "de", "1066", GERMAN),  # reference undecidable: not counted
                ("en", "de", ENGLISH, "1066"),  # prediction undecidable: its own category
                ("en", "en", ENGLISH, GERMAN),  # en-en has no intruding language
                ("de", "de", GERMAN, ENGLISH),  # x-x: answered in English
            ]
        ),
        detector,
    )
    assert list(result.columns[: len(KEYS)]) == KEYS
    assert result["language_error"].tolist() == [True, False, False, False, False, True]
    assert result["prediction_lang"].tolist() == ["de", "ru", "de", UNDECIDED, "de", "en"]
    assert result["reference_lang"].tolist()[2] == UNDECIDED


def test_empty_w_gives_an_empty_table(detector):
    result = language_errors(wrong([]).reindex(columns=KEYS + ["gold", "prediction"]), detector)
    assert result.empty and "language_error" in result.columns
