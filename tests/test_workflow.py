"""The Snakemake workflow itself: lint, the paper DAG (dry run), DAG-build errors, and the smoke run for real."""

import re
import time

import pandas as pd
import pytest
import yaml
from helpers.workflow import ROOT, copy_workflow, snakemake


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
    assert config["models"] == "main" and len(main) == 18
    assert {model for model, _, _ in jobs} == main
    assert len(set(jobs)) == 18 * 2 * 2
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
    smoke = yaml.safe_load((checkout / "config/smoke.yaml").read_text())
    tables = checkout / "results/smoke/tables"
    scores = pd.read_csv(tables / "direction_scores.csv")
    assert list(scores.columns) == ["model", "shots", "prompt_format", "context_lang", "question_lang", "n",
                                    "em", "f1"]
    assert len(scores) == len(smoke["models"]) * 2 * 2 * 23
    assert (scores["n"] == smoke["data"]["max_items"]).all()
    assert scores["f1"].between(0, 100).all()
    for shots in (0, 2):
        summary = pd.read_csv(tables / f"summary_{shots}shot.csv")
        assert len(summary) == len(smoke["models"]) and set(summary["prompt_format"]) <= {"v1", "v2"}
        for scenario in ("en-x", "x-x"):
            assert (tables / f"f1_{shots}shot_{scenario}.md").read_text().startswith("| model |")
            png = checkout / f"results/smoke/figures/heatmap_f1_{shots}shot_{scenario}.png"
            assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    registry = yaml.safe_load((checkout / "config/models.yaml").read_text())
    for key in smoke["models"]:
        kind = registry[key].get("source", "hub")
        weights = checkout / ("resources/tiny_models" if kind == "tiny" else "resources/finetuned") / key
        assert (weights / "config.json").exists() and (weights / "tokenizer.json").exists()
    # every stage of the study ran: error types, oracle (Table 3), layer-wise analysis, finetune comparison
    assert len(pd.read_csv(tables / "error_summary_2shot_en-x.csv")) == len(smoke["models"])
    assert set(pd.read_csv(tables / "oracle_summary.csv")["model"]) == {
        registry[key]["name"] for key in smoke["oracle"]["models"]}
    for name in ("mrd.csv", "similarity.csv"):
        assert len(pd.read_csv(checkout / "results/smoke/layers" / name)) > 0
    assert list((checkout / "results/smoke/figures/layers").rglob("*.png"))
    assert (checkout / "results/smoke/figures/finetune_comparison_2shot.png").exists()
    rerun = snakemake("--configfile", "config/smoke.yaml", "--cores", "2", "-n", cwd=checkout)
    assert "Nothing to be done" in rerun.stdout + rerun.stderr
