"""Finetuning in the DAG of the paper config: training on 8 GPUs before the tuned model is evaluated."""

import os
import re

from helpers import ROOT
from helpers.workflow import snakemake, with_venv_on_path

ENV = dict(os.environ, PYTHONPATH=str(ROOT / "src"))


def test_paper_dry_run_trains_on_8_gpus_before_evaluating_the_tuned_model():
    result = snakemake("-n", "--forceall", cwd=ROOT, env=with_venv_on_path(ENV))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    jobs = re.split(r"\n(?=rule |localrule )", result.stdout)
    train = [job for job in jobs if job.startswith("rule finetune_train:")]
    assert len(train) == 1 and "model=llama-3.1-tuned-8b" in train[0]
    assert re.search(r"resources: .*\bgpu=8\b", train[0])
    weights = "resources/finetuned/llama-3.1-tuned-8b"
    assert re.search(rf"output: {weights}\n", train[0])
    for rule in ("prompts", "generate"):
        tuned = [job for job in jobs if job.startswith(f"rule {rule}:") and "model=llama-3.1-tuned-8b" in job]
        # 2-shot in both formats: the paper's Tuned model has no 0-shot row (config skip_models)
        assert len(tuned) == 2 and all(weights in job.split("output:")[0] for job in tuned)
        assert all("shots=2" in job for job in tuned)
    assert any(job.startswith("rule finetune_compare:") for job in jobs)
    assert any(job.startswith("rule finetune_tulu:") and "--hub-id" not in job for job in jobs)
