"""MLQA through Snakemake: the dry run of config/mlqa_smoke.yaml on the bundled fixture."""

import shutil

from helpers import ROOT
from helpers.workflow import copy_workflow, snakemake

FIXTURE = ROOT / "tests/data/mlqa_fixture"


def test_workflow_wires_mlqa(tmp_path):
    """Dry run of config/mlqa_smoke.yaml: both splits' tables, prompts aligned by direction with the validation
    demonstrations (an XQuAD-only stage left on: tests/unit/test_config.py)."""
    checkout = copy_workflow(tmp_path / "checkout")
    shutil.copytree(FIXTURE, checkout / "tests/data/mlqa_fixture")
    result = snakemake("-n", "-p", "--configfile", "config/mlqa_smoke.yaml", cwd=checkout)
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout
    assert "--dataset mlqa --datasets config/datasets.yaml --local-dir tests/data/mlqa_fixture" in out
    assert "--split validation" in out and "mlqa_fixture/dev/dev-context-zh-question-zh.json" in out
    prompts = [line for line in out.splitlines() if "xmrc prompts" in line]
    assert len(prompts) == 2 and all(
        "--alignment by_direction --demonstration-data results/mlqa-smoke/data/mlqa_validation.parquet" in line
        for line in prompts
    )
    assert "paper_comparison" not in out  # the published numbers are XQuAD's
