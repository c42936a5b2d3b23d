"""The error stage in the DAG: its jobs in the paper run (its config problems: tests/unit/test_config.py)."""

import re

import pytest

from helpers.workflow import copy_workflow, snakemake


@pytest.fixture(scope="module")
def checkout(tmp_path_factory):
    return copy_workflow(tmp_path_factory.mktemp("errors_checkout"))


def test_paper_run_judges_once_with_the_72b_judge_on_its_gpus(checkout):
    result = snakemake(
        "-n",
        "-p",
        "results/paper/tables/error_summary_2shot_en-x.csv",
        "results/paper/tables/summary_2shot.csv",
        cwd=checkout,
    )
    assert result.returncode == 0, result.stderr
    judge_jobs = re.findall(r"rule judge:.*?resources: ([^\n]*)", result.stdout, re.DOTALL)
    assert len(judge_jobs) == 1 and "gpu=4" in judge_jobs[0]
    assert "--model qwen-2.5-instruct-72b" in result.stdout
    # W comes from both formats of every main model and of LLaMA-2-Chat-7B (a row of Tables 7-9); the format
    # is chosen on their scores by the tables' criterion
    wrong = re.search(r"python -m xmrc wrong-answers .*", result.stdout).group(0)
    assert wrong.count("/generations/") == 19 * 2 and "2shot-v1" in wrong and "0shot" not in wrong
    assert "generations/llama-2-chat-7b/2shot-v2.parquet" in wrong and "--format-criterion en-x" in wrong
    # LLaMA-2-Chat-7B is not a row of Table 2 (either half)
    for command in ("error-tables", "tables"):
        line = re.search(rf"python -m xmrc {command} .*", result.stdout).group(0)
        assert "--not-in-summary 'LLaMA-2-Chat-7B'" in line, line
    assert "--format-criterion en-x" in re.search(r"python -m xmrc tables .*", result.stdout).group(0)
