import pandas as pd
import pytest

from xmrc.analysis.oracle.sentences import (
    UNIT_COLUMNS,
    context_units,
    split_sentences,
    units_table,
)


def texts(text, lang="en"):
    return [text[u.start : u.end] for u in split_sentences(text, lang)]


def test_units_cover_the_text_exactly_and_keep_trailing_space():
    text = "  The Normans came. They stayed!  Did they leave? No.\n"
    units = texts(text)
    assert "".join(units) == text
    assert units == ["  The Normans came. ", "They stayed!  ", "Did they leave? ", "No.\n"]


@pytest.mark.parametrize(
    "text, expected",
    [
        ("Mr. Smith met Dr. Jones in St. Louis. They talked.", 2),
        ("J. R. R. Tolkien wrote it. It sold well.", 2),
        ("The U.S. economy grew, e.g. in 2000. Then it fell.", 2),
        ("Brown v. Board of Education was decided in 1954. It ended segregation.", 2),
        ('He said "I am here to . . . submit cheerfully". The court agreed.', 2),
        ("It ended in 1066. The next king was crowned.", 2),
        ("The value is 3.14 and rising. (It was lower.) Now it is high.", 3),
        ("It grew. and then it shrank.", 1),  # a lower-case start continues the sentence
    ],
)
def test_english_boundaries(text, expected):
    assert len(texts(text)) == expected, texts(text)


def test_german_ordinal_numbers_do_not_end_sentences():
    text = "Die Normannen gaben im 10. und 11. Jahrhundert der Normandie ihren Namen. Sie blieben."
    assert len(texts(text, "de")) == 2
    assert len(texts(text, "en")) == 3  # no ordinal dots in English: "11. Jahrhundert" ends a sentence


def test_chinese_greek_hindi_thai_terminators():
    chinese = "诺曼人来了。他们留下了！为什么？"
    assert texts(chinese, "zh") == ["诺曼人来了。", "他们留下了！", "为什么？"]
    assert len(texts("Ποιος ήρθε; Οι Νορμανδοί ήρθαν.", "el")) == 2
    assert len(texts("नॉर्मन आए। वे रुके।", "hi")) == 2
    assert texts("ชาวนอร์มันมา พวกเขาอยู่", "th") == ["ชาวนอร์มันมา ", "พวกเขาอยู่"]


def test_gold_unit_is_the_sentence_holding_the_answer():
    context = "Paris is big. The Normans came from Normandy. They stayed."
    answer = "Normandy"
    result = context_units(context, answer, context.index(answer), "en")
    assert result.gold == 1 and result.problem is None
    assert context[result.units[1].start : result.units[1].end].startswith("The Normans")


def test_answer_across_a_boundary_merges_the_sentences_and_is_reported():
    context = "Paris is big. The case was Brown v. Smith. Then it ended. Later more."
    answer = "it ended. Later"
    result = context_units(context, answer, context.index(answer), "en")
    assert [context[u.start : u.end] for u in result.units] == [
        "Paris is big. ",
        "The case was Brown v. Smith. ",
        "Then it ended. Later more.",
    ]
    assert result.gold == 2 and result.units[2].sentences == 2
    assert result.problem[0] == "answer_crosses_boundary"


def test_answer_not_at_answer_start_gets_no_gold_unit():
    result = context_units("One. Two.", "Three", 0, "en")
    assert result.gold is None and result.problem[0] == "answer_not_located"


def test_units_table_rows_and_problems():
    table = pd.DataFrame(
        {
            "id": ["a", "a", "b"],
            "lang": ["en", "de", "en"],
            "context": ["One thing. Two things.", "Eins. Zwei.", "Alpha. Beta gamma."],
            "answer_text": ["Two", "Zwei", "Delta"],
            "answer_start": [11, 6, 0],
        }
    )
    units, problems = units_table(table, ["en"])
    assert list(units.columns) == UNIT_COLUMNS
    assert set(units["lang"]) == {"en"}
    gold = units[units["is_gold"]]
    assert gold[["id", "unit", "start", "end"]].values.tolist() == [["a", 1, 11, 22]]
    assert problems[["id", "kind"]].values.tolist() == [["b", "answer_not_located"]]
