import pytest

from xmrc.extract import answer_complete, extract_answer


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
