"""The oracle's target rule: its protocol switches refused in one line (the regeneration itself runs in
test_run.py, through the job)."""

import pytest

from xmrc.analysis.oracle.regeneration import TargetRule
from xmrc.cli import build_parser
from xmrc.exceptions import XmrcError


@pytest.mark.parametrize(
    "options, message",
    [
        (
            {"step": "first_token"},
            "protocol.oracle_step: unknown value 'first_token' (expected one of answer_token, first_step)",
        ),
        ({"sequence": "all"}, "protocol.oracle_sequence: unknown value 'all' (expected one of eos, answer)"),
    ],
)
def test_target_rule_names_the_bad_switch_in_one_line(options, message):
    with pytest.raises(XmrcError) as raised:
        TargetRule(**options)
    assert str(raised.value) == message


def test_oracle_step_reaches_the_attribution_command():
    common = ["oracle-attribute", "--units", "u", "--summary", "s", "--prompts", "v1=p", "--generations", "v1=g"]
    common += ["--registry", "r", "--model", "m", "--out", "o"]
    parser = build_parser()
    assert parser.parse_args(common).step_target == "answer_token"
    assert parser.parse_args([*common, "--step-target", "first_step"]).step_target == "first_step"
    with pytest.raises(SystemExit):
        parser.parse_args([*common, "--step-target", "first_token"])
