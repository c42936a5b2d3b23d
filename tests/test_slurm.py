"""The smoke workflow through `snakemake --profile profiles/slurm` on a real one-node SLURM cluster.

`.ci/slurm_up.sh` installs SLURM and munge (apt), writes the config (two fake GPUs as GRES) and starts the
daemons; `.ci/slurm_down.sh` stops them after the module. The workflow runs in a copy of the repository
where one tiny model asks for a GPU, so the GPU path of the profile is exercised. Needs root; skipped with
a message otherwise.

The smoke config is reduced (2 tiny models, en/de/zh, 2 items, format v1; both shots): the full
smoke through SLURM on 2 shared CPU cores takes well over the test budget, almost all of it process start-up.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
GPU_MODEL = "tiny-llama-chat"
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def slurm_cluster():
    if os.geteuid() != 0:
        pytest.skip("the SLURM test needs root: .ci/slurm_up.sh installs SLURM and starts its daemons")
    if shutil.which("apt-get") is None and shutil.which("slurmctld") is None:
        pytest.skip("the SLURM test needs a Debian machine (apt-get) or SLURM installed")
    up = subprocess.run(["bash", str(ROOT / ".ci/slurm_up.sh")], capture_output=True, text=True, timeout=600)
    if up.returncode == 77:
        pytest.skip(up.stderr.strip())
    assert up.returncode == 0, up.stdout + up.stderr
    yield
    subprocess.run(["bash", str(ROOT / ".ci/slurm_down.sh")], capture_output=True, timeout=120)


def copy_workflow(destination: Path) -> Path:
    destination.mkdir(parents=True)
    for name in ("Snakefile", "workflow", "src", "config", "profiles", "envs"):
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, destination / name, symlinks=True,
                            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(source, destination / name)
    shutil.copytree(ROOT / "data" / "xquad_subset", destination / "data" / "xquad_subset")
    return destination


def environment() -> dict:
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    for variable in ("XMRC_SLURM_PARTITION", "XMRC_SLURM_GPU_PARTITION", "XMRC_SLURM_ACCOUNT"):
        env.pop(variable, None)
    return env


def scontrol_job(job_id: str) -> str:
    return subprocess.run(["scontrol", "-d", "show", "job", job_id], capture_output=True, text=True).stdout


def test_smoke_workflow_through_slurm_profile(slurm_cluster, tmp_path):
    work = copy_workflow(tmp_path / "xmrc")
    registry = yaml.safe_load((work / "config/models.yaml").read_text())
    registry[GPU_MODEL]["gpus"] = 1  # one generation job per setting asks for a (fake) GPU
    (work / "config/models.yaml").write_text(yaml.safe_dump(registry, sort_keys=False))
    config = yaml.safe_load((work / "config/smoke.yaml").read_text())
    config.update(models=[GPU_MODEL, "tiny-llama-base"], languages=["en", "de", "zh"], prompt_formats=["v1"])
    config["data"]["max_items"] = 2
    for stage in ("errors", "layers", "oracle", "finetune"):  # the generation DAG only
        config[stage]["enabled"] = False
    (work / "config/slurm.yaml").write_text(yaml.safe_dump(config, sort_keys=False))

    run = subprocess.run(
        ["snakemake", "--profile", "profiles/slurm", "--configfile", "config/slurm.yaml", "--jobs", "8", "--cores", "2",
         "--slurm-init-seconds-before-status-checks", "2", "--latency-wait", "5", "--retries", "0"],
        cwd=work, env=environment(), capture_output=True, text=True, timeout=900)
    log = run.stdout + run.stderr
    assert run.returncode == 0, log[-6000:]

    tables = work / "results/smoke/tables"
    scores = pd.read_csv(tables / "direction_scores.csv")
    assert len(scores) == 2 * 2 * 5  # 2 models x 2 shots x 5 directions
    assert (work / "results/smoke/figures/means_2shot.png").stat().st_size > 0

    submitted = dict(re.findall(r"Job (\S+) has been submitted with SLURM jobid (\d+)", log))
    # every job but the local data download went through sbatch (scores and report rules in groups)
    assert len(submitted) >= 2 + 4 + 4 + 2, log[-3000:]
    details = {slurm_id: scontrol_job(slurm_id) for slurm_id in submitted.values()}
    assert all("JobState=COMPLETED" in text for text in details.values())

    gpu_jobs = {i: t for i, t in details.items() if f"rule_generate_wildcards_{GPU_MODEL}" in t}
    cpu_generate = {i: t for i, t in details.items()
                    if "rule_generate_wildcards_" in t and f"wildcards_{GPU_MODEL}" not in t}
    assert len(gpu_jobs) == 2 and len(cpu_generate) == 2
    for text in gpu_jobs.values():
        assert "TresPerJob=gres:gpu:1" in text and "JOB_GRES=gpu:1" in text
    for text in cpu_generate.values():
        assert "gres:gpu" not in text and "JOB_GRES=(null)" in text
    for log_file in (work / "logs/smoke/generations" / GPU_MODEL).glob("*.log"):
        assert re.search(r"SLURM job \d+: GPUs [01]\b", log_file.read_text()), log_file
    for log_file in (work / "logs/smoke/generations/tiny-llama-base").glob("*.log"):
        assert re.search(r"SLURM job \d+: GPUs none", log_file.read_text()), log_file
