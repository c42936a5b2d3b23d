"""The layers config section and its rules: schema defaults and errors, and the jobs a dry run plans."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from xmrc.config import load_config, validate_config
from xmrc.exceptions import XmrcError

ROOT = Path(__file__).resolve().parent.parent


def test_configs_carry_the_layers_section():
    paper = load_config(ROOT / "config" / "config.yaml")["layers"]
    assert paper["enabled"] and paper["shots"] == 2 and paper["prompt_formats"] == ["v2", "v1"]
    assert "llama-3.1-instruct-8b" in paper["models"] and "llama-2-chat-7b" in paper["models"]
    smoke = load_config(ROOT / "config" / "smoke.yaml")["layers"]
    assert smoke["models"] == ["tiny-llama-base", "tiny-llama-chat"] and smoke["relevance"]["dtype"] == "float32"


def test_section_defaults_and_errors():
    base = yaml.safe_load((ROOT / "config" / "smoke.yaml").read_text())
    base.pop("layers")
    filled = validate_config(dict(base))["layers"]
    assert filled["enabled"] is False and filled["max_samples"] == 100 and filled["relevance"]["batch_size"] == 1
    with pytest.raises(XmrcError, match=r"key 'layers.max_samples'"):
        validate_config(dict(base, layers={"max_samples": 1}))
    with pytest.raises(XmrcError, match=r"unknown key 'cap'"):
        validate_config(dict(base, layers={"cap": 3}))
    with pytest.raises(XmrcError, match=r"layers.change_sets.solo"):
        validate_config(dict(base, layers={"change_sets": {"solo": ["tiny-llama-base"]}}))


@pytest.mark.skipif(shutil.which("snakemake", path=os.path.dirname(sys.executable) + os.pathsep
                                 + os.environ.get("PATH", "")) is None, reason="snakemake not installed")
def test_paper_dry_run_plans_the_layer_jobs():
    env = dict(os.environ, PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""))
    done = subprocess.run(["snakemake", "-n", "--quiet", "rules"], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    counts = {}
    for line in (done.stdout + done.stderr).splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0].startswith("layer_") and parts[1].isdigit():
            counts[parts[0]] = int(parts[1])
    # 5 LLaMA models of the main list x 2 prompt formats; LLaMA-2-Chat-7B is not in `models: main`
    assert counts == {"layer_groups": 1, "layer_relevance": 10, "layer_hidden_states": 10, "layer_mrd": 1,
                      "layer_similarity": 1, "layer_figures": 10, "layer_change_figures": 4}
    assert "model 'llama-2-chat-7b' is not among the run's models" in done.stderr
