"""The layers config section and its rules: schema defaults and errors, and the jobs a dry run plans."""

import os
import re
import shutil
import sys

import pytest
import yaml

from helpers import ROOT
from helpers.workflow import snakemake, with_venv_on_path
from xmrc.config import load_config, validate_config
from xmrc.exceptions import XmrcError


def test_configs_carry_the_layers_section():
    paper = load_config(ROOT / "config" / "config.yaml")["layers"]
    assert paper["enabled"] and paper["shots"] == 2 and paper["prompt_formats"] == ["best", "v1"]
    assert "llama-3.1-instruct-8b" in paper["models"] and "llama-2-chat-7b" in paper["models"]
    smoke = load_config(ROOT / "config" / "smoke.yaml")["layers"]
    assert smoke["models"] == ["tiny-llama-base", "tiny-llama-chat"] and smoke["relevance"]["dtype"] == "float32"


def test_section_defaults_and_errors():
    base = yaml.safe_load((ROOT / "config" / "smoke.yaml").read_text())
    base.pop("layers")
    filled = validate_config(dict(base))["layers"]
    assert filled["enabled"] is False and filled["max_samples"] == 100 and filled["relevance"]["batch_size"] == 1
    assert filled["example_items"] == 1
    with pytest.raises(XmrcError, match=r"key 'layers.example_items'"):
        validate_config(dict(base, layers={"example_items": -1}))
    with pytest.raises(XmrcError, match=r"key 'layers.max_samples'"):
        validate_config(dict(base, layers={"max_samples": 1}))
    with pytest.raises(XmrcError, match=r"unknown key 'cap'"):
        validate_config(dict(base, layers={"cap": 3}))
    with pytest.raises(XmrcError, match=r"layers.change_sets.solo"):
        validate_config(dict(base, layers={"change_sets": {"solo": ["tiny-llama-base"]}}))


@pytest.mark.skipif(
    shutil.which("snakemake", path=os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")) is None,
    reason="snakemake not installed",
)
def test_paper_dry_run_plans_the_layer_jobs():
    done = snakemake("-n", "--quiet", "rules", cwd=ROOT, env=with_venv_on_path(), timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    counts = {}
    for line in (done.stdout + done.stderr).splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0].startswith("layer_") and parts[1].isdigit():
            counts[parts[0]] = int(parts[1])
    # 5 LLaMA-3.1 models of the main list and LLaMA-2-Chat-7B (extra_models) x 2 prompt formats
    assert counts == {
        "layer_groups": 1,
        "layer_relevance": 12,
        "layer_hidden_states": 12,
        "layer_mrd": 1,
        "layer_similarity": 1,
        "layer_figures": 12,
        "layer_example_figure": 12,
        "layer_change_figures": 4,
    }
    assert "warning" not in done.stderr


def test_analysis_only_model_is_evaluated_in_the_layer_settings_only():
    # LLaMA-2-Chat-7B as the layer analysis's model only: not a row (no extra_models)
    done = snakemake("-n", "--config", "extra_models=[]", cwd=ROOT, env=with_venv_on_path(), timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    plan = done.stdout + done.stderr
    generations = set(re.findall(r"results/paper/generations/llama-2-chat-7b/([\w-]+)\.parquet", plan))
    assert generations == {"2shot-v1", "2shot-v2"}  # layers.shots x layers.prompt_formats, not the full grid

    # not a row of the tables: the run's aggregate and the error stage never read its scores
    def inputs(rule):
        return re.search(rf"^rule {rule}:\n\s+input: (.*)$", plan, re.M).group(1)

    for rule in ("direction_scores", "wrong_answers"):
        assert "llama-2-chat-7b" not in inputs(rule) and "llama-3.1-8b" in inputs(rule)
    assert "scores/llama-2-chat-7b/2shot-v1.parquet" in inputs("layer_groups")
