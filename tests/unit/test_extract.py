import pytest

from xmrc.exceptions import XmrcError
from xmrc.extract import answer_complete, answer_span, extract_answer


@pytest.mark.parametrize(
    "raw, answer",
    [
        (" Rollo\nContext: next", "Rollo"),
        ("Answer: William Iron Arm\nQuestion: more", "William Iron Arm"),
        ("answer:   Drogo  ", "Drogo"),
        ("**Answer:** Seljuk Turks", "Seljuk Turks"),
        ("Answer\uff1a\u4e1c\u4eac", "\u4e1c\u4eac"),
        ("\n\nAnswer:\nAfrica\nmore", "Africa"),
        ("Answer:", ""),
        ("", ""),
        (None, ""),
        ("   \n  ", ""),
        ("The answer is Rollo.\nAnswer: x", "The answer is Rollo."),
    ],
)
def test_extract_answer(raw, answer):
    assert extract_answer(raw) == answer


@pytest.mark.parametrize(
    "raw, done",
    [
        (" Rollo", False),
        (" Rollo\n", True),
        ("\n Rollo", False),
        ("Answer: Rollo\n", True),
        ("Answer:\n", False),
        ("Answer:\nRollo", False),
        ("Answer:\nRollo\n", True),
    ],
)
def test_answer_complete(raw, done):
    assert answer_complete(raw) is done


@pytest.mark.parametrize(
    "raw, first_line, answer_label",
    [
        ("Sure, here is the answer:\nAnswer: Rollo\n", "Sure, here is the answer:", "Rollo"),
        ("Rollo\nAnswer: Drogo", "Rollo", "Drogo"),
        (" Rollo\nContext: next", "Rollo", "Rollo"),  # no label anywhere: the first line under both
        ("\n\nAnswer: William\n\nContext: x", "William", "William"),
        ("Here you go.\nAnswer:\nAfrica\n", "Here you go.", "Africa"),
        ("", "", ""),
    ],
)
def test_the_two_extraction_rules(raw, first_line, answer_label):
    assert extract_answer(raw, "first_line") == first_line
    assert extract_answer(raw, "answer_label") == answer_label
    span = answer_span(raw, "answer_label")
    assert (raw[span[0] : span[1]] if span else "") == answer_label


@pytest.mark.parametrize(
    "raw, done",
    [
        ("Sure, here is the answer:\n", False),  # a label may follow
        ("Sure, here is the answer:\nAnswer: Rollo", False),
        ("Sure, here is the answer:\nAnswer: Rollo\n", True),
        (" Rollo\nContext: a\nQuestion: b\n", True),  # three lines and no label: the first line it is
        ("a\nb\nAnswer:", False),
    ],
)
def test_answer_label_decoding_stops_once_the_labelled_answer_is_complete(raw, done):
    assert answer_complete(raw, "answer_label") is done


def test_unknown_extraction_rule_is_one_line():
    with pytest.raises(XmrcError, match=r"^protocol.extraction: unknown value 'last_line' \(expected one of"):
        extract_answer("x", "last_line")
