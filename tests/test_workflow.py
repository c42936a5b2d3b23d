"""The Snakemake workflow itself: lint, the paper DAG (dry run), DAG-build errors, and the smoke run for real."""

import re
import time

import pytest
import yaml
from helpers.workflow import ROOT, assert_smoke_outputs, copy_workflow, snakemake


@pytest.fixture(scope="module")
def checkout(tmp_path_factory):
    return copy_workflow(tmp_path_factory.mktemp("checkout"))


def test_lint_is_clean(checkout):
    result = snakemake("--lint", cwd=checkout)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Congratulations, your workflow is in a good condition!" in result.stdout + result.stderr


def test_paper_dry_run_has_every_model_job(checkout):
    started = time.monotonic()
    result = snakemake("-n", cwd=checkout)
    elapsed = time.monotonic() - started
    assert result.returncode == 0, result.stderr
    jobs = re.findall(r"rule generate(?:_api)?:.*?wildcards: model=([^,\s]+), shots=(\d+), fmt=(v\d)",
                      result.stdout, re.S)
    config = yaml.safe_load((checkout / "config/config.yaml").read_text())
    registry = yaml.safe_load((checkout / "config/models.yaml").read_text())
    main = {key for key, entry in registry.items() if entry.get("main")}
    assert config["models"] == "main" and len(main) == 18 and len(jobs) == len(set(jobs))
    by_setting = {(shots, fmt): {model for model, s, f in jobs if (s, f) == (shots, fmt)}
                  for shots in ("0", "2") for fmt in ("v1", "v2")}
    # 2-shot: the main list (Table 2) and LLaMA-2-Chat-7B (Tables 7-9 and the layer analysis)
    assert by_setting[("2", "v1")] == by_setting[("2", "v2")] == main | {"llama-2-chat-7b"}
    # 0-shot: the rows of Table 5, LLaMA-2-Chat-7B among them, no LLaMA-3.1-Tuned-8B or DeepSeek-V3
    assert by_setting[("0", "v1")] == by_setting[("0", "v2")] == (
        main - {"llama-3.1-tuned-8b", "deepseek-v3"} | {"llama-2-chat-7b"})
    assert len(jobs) == 19 * 2 + 17 * 2
    assert elapsed < 60


@pytest.mark.parametrize("override, message", [
    ("models=[not-a-model]", "unknown model 'not-a-model'"),
    ("prompt_formats=[v3]", "key 'prompt_formats[0]'"),
])
def test_bad_config_stops_the_dag_with_one_line(checkout, override, message):
    result = snakemake("-n", "--config", override, cwd=checkout)
    assert result.returncode != 0
    errors = [line for line in result.stderr.splitlines() if line.startswith("xmrc: error:")]
    assert len(errors) == 1 and message in errors[0], result.stderr
    assert "Traceback" not in result.stderr


def test_conda_env_pins_match_the_venv_requirements():
    requirements = [line.strip() for line in (ROOT / "envs/requirements-cpu.txt").read_text().splitlines()
                    if line.strip() and not line.startswith("#")]
    env = yaml.safe_load((ROOT / "envs/xmrc.yaml").read_text())
    pip = next(item["pip"] for item in env["dependencies"] if isinstance(item, dict))
    assert pip == requirements


@pytest.mark.slow
def test_smoke_workflow_end_to_end(checkout):
    result = snakemake("--configfile", "config/smoke.yaml", "--cores", "2", cwd=checkout)
    assert result.returncode == 0, result.stderr[-3000:]
    assert_smoke_outputs(checkout)
    rerun = snakemake("--configfile", "config/smoke.yaml", "--cores", "2", "-n", cwd=checkout)
    assert "Nothing to be done" in rerun.stdout + rerun.stderr
