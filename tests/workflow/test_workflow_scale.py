"""The workflow at scale, by dry runs: GPU resources of the paper DAG through the SLURM profile, and partial
re-runs (one model's entry, one setting, the generation code version) after a small real run."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from helpers import ROOT
from helpers.workflow import copy_workflow, snakemake, with_venv_on_path
from xmrc.config import Registry


def snakemake_log(*args, cwd=ROOT, check=True):
    """Stdout and stderr of a Snakemake run, asserted to succeed unless `check` is false."""
    result = snakemake(*args, cwd=cwd, env=with_venv_on_path(), timeout=600)
    if check:
        assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    return result.stdout + result.stderr


def dry_run_jobs(output: str) -> list[dict]:
    """(rule, wildcards, resources) of every job a dry run prints."""
    jobs = []
    for block in re.split(r"\n(?=(?:local)?rule \w+:)", output):
        head = re.match(r"(?:local)?rule (\w+):", block)
        if not head:
            continue
        job = {"rule": head.group(1), "wildcards": {}, "resources": {}}
        for field in ("wildcards", "resources"):
            line = re.search(rf"^\s+{field}: (.*)$", block, re.M)
            if line:
                job[field] = dict(item.split("=", 1) for item in line.group(1).split(", ") if "=" in item)
        jobs.append(job)
    return jobs


def test_paper_dry_run_through_slurm_profile_shows_gpus_per_model():
    jobs = dry_run_jobs(snakemake_log("-n", "--profile", "profiles/slurm"))
    registry = Registry.load(ROOT / "config/models.yaml")
    generate = [j for j in jobs if j["rule"] == "generate"]
    api = [j for j in jobs if j["rule"] == "generate_api"]
    # 2-shot: 15 local models of the main list and LLaMA-2-Chat-7B; 0-shot: without LLaMA-3.1-Tuned-8B and
    # DeepSeek-V3 (Table 5's rows); x 2 prompt formats
    assert len(generate) == 16 * 2 + 15 * 2 and len(api) == 3 * 2 + 2 * 2
    for job in generate:
        model = registry.get(job["wildcards"]["model"])
        expected = 4 if model.size_b >= 70 else 1
        assert int(job["resources"]["gpu"]) == expected, job
        assert int(job["resources"]["cpus_per_gpu"]) == 8
        assert int(job["resources"]["mem_mb"]) >= 16 * 1024
    for job in api:
        assert registry.get(job["wildcards"]["model"]).backend == "api"
        assert int(job["resources"].get("gpu", 0)) == 0 and "cpus_per_gpu" not in job["resources"]
    analysis_on_gpus = {"judge", "layer_relevance", "layer_hidden_states", "oracle_attribution", "finetune_train"}
    assert all(
        int(j["resources"].get("gpu", 0)) == 0
        for j in jobs
        if not j["rule"].startswith("generate") and j["rule"] not in analysis_on_gpus
    )
    fetches = {j["wildcards"]["model"] for j in jobs if j["rule"] == "fetch_model"}
    assert fetches == {
        k for k, m in registry.models.items() if m.main and m.backend == "local" and m.source == "hub"
    } | {"llama-2-chat-7b"}


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """A small real run (2 tiny models, en/de, 0-shot v1, 2 items) in a copy of the workflow."""
    work = copy_workflow(tmp_path_factory.mktemp("rerun"))
    config = yaml.safe_load((ROOT / "config/smoke.yaml").read_text())
    config.update(
        run="rerun",
        models=["tiny-llama-chat", "tiny-llama-base"],
        languages=["en", "de"],
        shots=[0],
        prompt_formats=["v1"],
    )
    config["data"]["max_items"] = 2
    for stage in ("errors", "layers", "oracle", "finetune"):  # the generation DAG only
        config[stage]["enabled"] = False
    (work / "config/rerun.yaml").write_text(yaml.safe_dump(config))
    snakemake_log("--configfile", "config/rerun.yaml", "--cores", "2", cwd=work)
    assert "Nothing to be done" in snakemake_log("-n", "--configfile", "config/rerun.yaml", cwd=work)
    return work


def planned(work, *extra):
    jobs = dry_run_jobs(
        snakemake_log(
            "-n",
            "--configfile",
            "config/rerun.yaml",
            "--rerun-triggers",
            "mtime",
            "params",
            "input",
            "code",
            *extra,
            cwd=work,
        )
    )
    return {(j["rule"], j["wildcards"].get("model")) for j in jobs}


def edit_yaml(path: Path, change):
    original = path.read_text()
    data = yaml.safe_load(original)
    change(data)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return original


def test_changing_one_model_entry_reruns_only_that_model(finished_run):
    registry = finished_run / "config/models.yaml"
    original = edit_yaml(registry, lambda d: d["tiny-llama-base"].update(revision="pinned"))
    try:
        jobs = planned(finished_run)
    finally:
        registry.write_text(original)
    assert {("prompts", "tiny-llama-base"), ("generate", "tiny-llama-base"), ("score", "tiny-llama-base")} <= jobs
    assert not {j for j in jobs if j[1] == "tiny-llama-chat"}
    assert ("tiny_model", "tiny-llama-base") not in jobs and ("xquad", None) not in jobs


def test_scheduling_fields_rerun_nothing(finished_run):
    registry = finished_run / "config/models.yaml"
    original = edit_yaml(registry, lambda d: d["tiny-llama-chat"].update(gpus=2, mem_gb=8, runtime_min=5))
    try:
        assert planned(finished_run) == set()
    finally:
        registry.write_text(original)


def test_changing_a_generation_setting_reruns_generation_not_prompts(finished_run):
    config = finished_run / "config/rerun.yaml"
    original = edit_yaml(config, lambda d: d["generation"].update(max_new_tokens=7))
    try:
        jobs = planned(finished_run)
    finally:
        config.write_text(original)
    assert {("generate", "tiny-llama-chat"), ("generate", "tiny-llama-base")} <= jobs
    assert not {j for j in jobs if j[0] in ("prompts", "tiny_model", "xquad")}


def planned_after_code_version_bump(run: Path, module: str) -> set:
    """The jobs a dry run plans once `module`'s CODE_VERSION is one higher (the module restored after)."""
    path = run / "src/xmrc" / module
    original = path.read_text()
    path.write_text(
        re.sub(r"^CODE_VERSION = (\d+)$", lambda m: f"CODE_VERSION = {int(m.group(1)) + 1}", original, flags=re.M)
    )
    try:
        return planned(run)
    finally:
        path.write_text(original)


def test_generation_code_version_reruns_generation_only(finished_run):
    jobs = planned_after_code_version_bump(finished_run, "generation.py")
    assert {("generate", "tiny-llama-chat"), ("generate", "tiny-llama-base")} <= jobs
    assert not {j for j in jobs if j[0] in ("prompts", "tiny_model", "xquad")}


def test_prompts_code_version_rebuilds_prompts_and_what_follows(finished_run):
    jobs = planned_after_code_version_bump(finished_run, "prompts.py")
    # e.g. 0-shot now scores the demonstration items: stale prompt tables and their generations are rebuilt
    assert {("prompts", "tiny-llama-chat"), ("generate", "tiny-llama-chat"), ("score", "tiny-llama-base")} <= jobs
    assert not {j for j in jobs if j[0] in ("tiny_model", "xquad")}
