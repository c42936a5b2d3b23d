"""The smoke workflow through `snakemake --profile profiles/slurm` on a real one-node SLURM cluster.

`.ci/slurm_up.sh` installs SLURM and munge (apt), writes the config (two fake GPUs as GRES) and starts the
daemons; `.ci/slurm_down.sh` stops them after the module. The smoke config's every model and stage, in one
setting (2-shot, v2: the setting every later stage reads), runs in a copy of the repository where one tiny
model asks for a GPU, so the GPU path of the profile is exercised. The other settings add only more jobs of
the same rules, which the local smoke run (tests/workflow/test_workflow.py) covers. Needs root; skipped with a message
otherwise. About 6 minutes on 2 cores: each of the ~60 jobs starts Snakemake and Python again inside its
SLURM job.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess

import pytest
import yaml

from helpers import ROOT
from helpers.workflow import WORKFLOW_PARTS, assert_smoke_outputs, copy_workflow, snakemake, with_venv_on_path

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


def environment() -> dict:
    env = with_venv_on_path()
    for variable in ("XMRC_SLURM_PARTITION", "XMRC_SLURM_GPU_PARTITION", "XMRC_SLURM_ACCOUNT"):
        env.pop(variable, None)
    return env


def scontrol_job(job_id: str) -> str:
    return subprocess.run(["scontrol", "-d", "show", "job", job_id], capture_output=True, text=True).stdout


def test_smoke_workflow_through_slurm_profile(slurm_cluster, tmp_path):
    work = copy_workflow(tmp_path / "xmrc", parts=WORKFLOW_PARTS + ("profiles",))
    registry = yaml.safe_load((work / "config/models.yaml").read_text())
    registry[GPU_MODEL]["gpus"] = 1  # its generation jobs ask for a (fake) GPU
    (work / "config/models.yaml").write_text(yaml.safe_dump(registry, sort_keys=False))
    smoke = yaml.safe_load((work / "config/smoke.yaml").read_text())
    smoke.update(shots=[2], prompt_formats=["v2"])
    (work / "config/slurm_smoke.yaml").write_text(yaml.safe_dump(smoke, sort_keys=False))
    settings = 1

    run = snakemake(
        "--profile",
        "profiles/slurm",
        "--configfile",
        "config/slurm_smoke.yaml",
        "--jobs",
        "8",
        "--cores",
        "2",
        "--slurm-init-seconds-before-status-checks",
        "2",
        "--latency-wait",
        "5",
        "--retries",
        "0",
        cwd=work,
        env=environment(),
        timeout=2400,
    )
    log = run.stdout + run.stderr
    assert run.returncode == 0, log[-6000:]
    assert_smoke_outputs(work, "config/slurm_smoke.yaml")

    submitted = dict(re.findall(r"Job (\S+) has been submitted with SLURM jobid (\d+)", log))
    local = re.findall(r"^localrule (\w+):", log, re.M)
    assert len(submitted) >= 50 and set(local) <= {"xquad", "fetch_model", "all"}, log[-3000:]
    details = {slurm_id: scontrol_job(slurm_id) for slurm_id in submitted.values()}
    assert all("JobState=COMPLETED" in text for text in details.values())

    gpu_jobs = {i: t for i, t in details.items() if f"rule_generate_wildcards_{GPU_MODEL}" in t}
    cpu_generate = {
        i: t for i, t in details.items() if "rule_generate_wildcards_" in t and f"wildcards_{GPU_MODEL}" not in t
    }
    assert len(gpu_jobs) == settings and len(cpu_generate) >= settings
    for text in gpu_jobs.values():
        assert "TresPerJob=gres:gpu:1" in text and "JOB_GRES=gpu:1" in text
    for text in cpu_generate.values():
        assert "gres:gpu" not in text and "JOB_GRES=(null)" in text
    for log_file in (work / "logs/smoke/generations" / GPU_MODEL).glob("*.log"):
        assert re.search(r"SLURM job \d+: GPUs [01]\b", log_file.read_text()), log_file
    for log_file in (work / "logs/smoke/generations/tiny-llama-base").glob("*.log"):
        assert re.search(r"SLURM job \d+: GPUs none", log_file.read_text()), log_file
