"""The workflow through `snakemake --profile profiles/slurm` on a real one-node SLURM cluster (2 CPUs).

`.ci/slurm_up.sh` installs SLURM and munge (apt), writes the config (two fake GPUs as GRES) and starts the
daemons; `.ci/slurm_down.sh` stops them after the module. Needs root; skipped with a message otherwise.

- The smoke config's every model and stage, in one setting (2-shot, v2: the setting every later stage reads), in
  a copy of the repository where one tiny model asks for a GPU, so the GPU path of the profile is exercised;
  without `--cores`, so the profile's `cores: 16` meets a 2-CPU node and the preflight sizes the groups. About 6
  minutes on 2 cores: each of the ~60 jobs starts Snakemake and Python again inside its SLURM job.
- The preflight (xmrc.hub.cluster) refusing, before any submission, a group and jobs no node can hold.
- Faults of a running generation job (a SLURM time limit, scancel, its node set DOWN and back), each followed by
  a retry or requeue that resumes from the job's shards; the tables equal an uninterrupted local run's.
  `make test` runs this module beside the rest of the suite.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from helpers import ROOT
from helpers.workflow import WORKFLOW_PARTS, assert_smoke_outputs, copy_workflow, snakemake, with_venv_on_path
from xmrc.io import read_table

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
    # no --cores: the profile's `cores: 16` would make a group ask for 8 CPUs; the preflight sized the groups
    # to the node's 2 CPUs, and every group job got at most that
    assert "xmrc: cluster preflight: groups of jobs ask for at most 2 CPUs" in log, log[:3000]
    groups = [text for text in details.values() if "slurm_logs/group_" in text]
    cpus = [int(re.search(r"NumCPUs=(\d+)", text)[1]) for text in groups]
    assert groups and max(cpus) <= 2, cpus

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


# --- preflight: what no node of the cluster can hold is refused before anything is submitted ---


def submitted_jobs(log: str) -> list[str]:
    return re.findall(r"has been submitted with SLURM jobid (\d+)", log)


@pytest.fixture(scope="module")
def checkout(slurm_cluster, tmp_path_factory):
    """A copy of the workflow whose fault run (config/faults.yaml: the chat model, four languages, 2-shot v2,
    one checkpoint shard per prompt, a 1-minute SLURM time limit on generation) finished locally: the
    uninterrupted tables every fault run must give again."""
    work = copy_workflow(tmp_path_factory.mktemp("faults") / "xmrc", parts=WORKFLOW_PARTS + ("profiles",))
    registry = yaml.safe_load((work / "config/models.yaml").read_text())
    registry[FAULT_MODEL]["runtime_min"] = 1  # a scheduling field: the same generations, `-t 1` on SLURM
    (work / "config/models.yaml").write_text(yaml.safe_dump(registry, sort_keys=False))
    faults = yaml.safe_load((work / "config/smoke.yaml").read_text())
    faults.update(
        run="faults",
        models=[FAULT_MODEL],
        extra_models=[],
        skip_models=[],
        languages=["en", "de", "zh", "ar"],
        shots=[2],
        prompt_formats=["v2"],
        **{stage: {"enabled": False} for stage in ("errors", "layers", "oracle", "finetune")},
    )
    faults["generation"]["chunk_size"] = 1
    (work / "config/faults.yaml").write_text(yaml.safe_dump(faults, sort_keys=False))
    local = snakemake("--configfile", "config/faults.yaml", "--cores", "2", *FAULT_TARGETS, cwd=work, timeout=900)
    assert local.returncode == 0, local.stderr[-3000:]
    return work, fault_tables(work)


FAULT_MODEL = "tiny-llama-chat"
FAULT_TABLES = ("tables/item_scores.parquet", "tables/direction_scores.csv", "tables/summary_2shot.csv")
FAULT_TARGETS = tuple(f"results/faults/{name}" for name in FAULT_TABLES)


def fault_tables(work: Path) -> dict[str, pd.DataFrame]:
    return {name: read_table(work / "results/faults" / name) for name in FAULT_TABLES}


def test_preflight_refuses_what_no_node_can_hold_before_submitting_anything(checkout):
    work, _ = checkout
    before = set(
        re.findall(r"^\s*(\d+)", subprocess.run(["squeue", "-h"], capture_output=True, text=True).stdout, re.M)
    )
    cases = [
        # the example: the profile's `cores: 16` lets eight score jobs share one SLURM job
        (
            ["--configfile", "config/smoke.yaml", "--config", 'cluster={"size_groups": false}'],
            {},
            "xmrc: error: cluster preflight: group 'scores' (8 jobs of score) asks for 8 CPUs, 16000 MB, 30 min; "
            "partition 'debug' nodes hold at most 2 CPUs, ",
        ),
        (
            [
                "--configfile",
                "config/faults.yaml",
                "--forcerun",
                "generate",
                "--set-resources",
                "generate:gpu=4",
                "--",
                *FAULT_TARGETS,
            ],
            {},
            f"xmrc: error: cluster preflight: job 'generate' (model {FAULT_MODEL}) asks for 2 CPUs, ",
        ),
        (
            ["--configfile", "config/faults.yaml", "--forcerun", "generate", "--", *FAULT_TARGETS],
            {"XMRC_SLURM_GPU_PARTITION": "gpu"},
            f"xmrc: error: cluster preflight: job 'generate' (model {FAULT_MODEL}) asks for partition 'gpu', "
            "which does not exist (partitions: debug)",
        ),
    ]
    for arguments, variables, line in cases:
        started = time.monotonic()
        run = snakemake(
            "--profile",
            "profiles/slurm",
            *arguments,
            cwd=work,
            env=environment() | variables,
            timeout=300,
        )
        log = run.stdout + run.stderr
        refusals = [text for text in log.splitlines() if text.startswith("xmrc: error:")]
        assert run.returncode != 0 and len(refusals) >= 1 and refusals[0].startswith(line), log[-3000:]
        assert not submitted_jobs(log) and time.monotonic() - started < 60
        print(f"refused in {time.monotonic() - started:.1f} s: {refusals[0]}")
    after = set(re.findall(r"^\s*(\d+)", subprocess.run(["squeue", "-h"], capture_output=True, text=True).stdout, re.M))
    assert after == before  # nothing reached the queue

    fits = subprocess.run(
        [sys.executable, "-m", "xmrc", "check-cluster", "--job", "cpus=2,mem_mb=4000"], capture_output=True, text=True
    )
    assert fits.returncode == 0 and fits.stdout.startswith("debug (default): UP, 1 node(s), at most 2 CPUs"), fits
    too_big = subprocess.run(
        [sys.executable, "-m", "xmrc", "check-cluster", "--job", "gpu=3"], capture_output=True, text=True
    )
    assert too_big.returncode == 2 and too_big.stderr.strip().splitlines() == [
        "xmrc: error: job 'gpu=3' asks for 1 CPU, 0 MB, 3 GPUs; partition 'debug' nodes hold at most 2 CPUs, "
        + too_big.stderr.split("2 CPUs, ", 1)[1].split(" MB")[0]
        + " MB, 2 GPUs (GPU types: untyped)"
    ], too_big.stderr


# --- faults of a running generation job: time limit, scancel, a node lost; each retry resumes ---


def squeue_generate_job() -> tuple[str, str] | None:
    """The generation job in the queue: (SLURM id, state), None when there is none."""
    rows = subprocess.run(["squeue", "-h", "-o", "%i|%T|%k"], capture_output=True, text=True).stdout.splitlines()
    for row in rows:
        job_id, state, comment = row.split("|", 2)
        if "rule_generate" in comment and state in {"RUNNING", "PENDING", "SUSPENDED"}:
            return job_id, state
    return None


def job_processes(job_id: str) -> list[int]:
    """The processes SLURM started for the job (proctrack/linuxproc: those with its SLURM_JOB_ID)."""
    marker = f"SLURM_JOB_ID={job_id}".encode()
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if marker in (entry / "environ").read_bytes().split(b"\0"):
                    pids.append(int(entry.name))
            except OSError:
                continue
    return pids


def node_state() -> str:
    return subprocess.run(["sinfo", "-h", "-n", "localhost", "-o", "%T"], capture_output=True, text=True).stdout.upper()


def job_state(job_id: str) -> str:
    return (re.search(r"JobState=(\S+)", scontrol_job(job_id)) or [None, ""])[1]


def wait_until(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"no {what} within {timeout} s")


def test_time_limit_scancel_and_a_lost_node_each_resume_to_the_uninterrupted_tables(checkout):
    work, reference = checkout
    out = work / "results/faults/generations" / FAULT_MODEL / "2shot-v2.parquet"
    shards = out.with_name(out.name + ".shards")
    started = time.monotonic()
    snake = subprocess.Popen(
        [sys.executable, "-m", "snakemake", "--profile", "profiles/slurm", "--configfile", "config/faults.yaml",
         "--forcerun", "generate", "--retries", "3", "--jobs", "2", "--latency-wait", "5",
         "--slurm-init-seconds-before-status-checks", "2", "--", *FAULT_TARGETS],
        cwd=work, env=environment(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    lines: list[tuple[float, str]] = []

    def read():
        for line in snake.stdout:
            lines.append((time.monotonic(), line.rstrip()))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()

    def failure_seen(job_id):
        return next((t for t, line in lines if f"SLURM-job '{job_id}' failed" in line), None)

    def kept():
        return len(list(shards.glob("shard-*.parquet"))) if shards.exists() else 0

    faults = []
    try:
        for fault in ("time limit", "scancel", "node down"):
            done_before = kept()

            def running_with_new_shards(done_before=done_before):
                job = squeue_generate_job()
                fresh = job and job[1] == "RUNNING" and all(job[0] != f["job"] for f in faults)
                return job[0] if fresh and kept() > done_before else None

            job_id = wait_until(
                running_with_new_shards, 240, f"new shards of a running generation job before the {fault}"
            )
            at = time.monotonic()
            if fault == "time limit":  # the job stops making progress (a stalled node); SLURM ends it at 1 min
                for pid in job_processes(job_id):
                    os.kill(pid, signal.SIGSTOP)
            elif fault == "scancel":
                subprocess.run(["scancel", job_id], check=True)
            else:
                subprocess.run(
                    ["scontrol", "update", "nodename=localhost", "state=down", "reason=xmrc-fault-test"], check=True
                )
            faults.append({"fault": fault, "job": job_id, "at": at, "kept": kept()})
            if fault == "node down":  # SLURM requeues a batch job whose node failed (JobRequeue=1, the default)
                wait_until(lambda job_id=job_id: job_state(job_id) != "RUNNING", 120, "the job leaving its node")
                faults[-1]["seen"] = time.monotonic()
                # (ReturnToService=2 may return it first, when slurmd registers again: then resume is refused)
                subprocess.run(["scontrol", "update", "nodename=localhost", "state=resume"], capture_output=True)
                wait_until(lambda: "DOWN" not in node_state(), 60, "the node back in service")
            else:
                faults[-1]["seen"] = wait_until(
                    lambda job_id=job_id: failure_seen(job_id), 240, f"report of the {fault}"
                )
        snake.wait(timeout=600)
    finally:
        if snake.poll() is None:
            snake.kill()
        subprocess.run(["scontrol", "update", "nodename=localhost", "state=resume"], capture_output=True)
        reader.join(timeout=10)
        for fault in faults:  # proctrack/linuxproc can leave a process of a job its node lost: not ours to keep
            for pid in job_processes(fault["job"]):
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)
    log = "\n".join(line for _, line in lines)
    assert snake.returncode == 0, log[-5000:]
    total = time.monotonic() - started

    states = {"time limit": "TIMEOUT", "scancel": "CANCELLED"}
    for fault in faults:
        details = scontrol_job(fault["job"])
        message = f"SLURM-job '{fault['job']}' failed"
        reported = [text.strip() for text in log.splitlines() if message in text]
        if fault["fault"] == "node down":  # the same SLURM job ran again once the node was back, and finished
            assert "JobState=COMPLETED" in details and "Restarts=1" in details and not reported, details
            reported = [f"squeue: job {fault['job']} PENDING again (requeued), then RUNNING once the node resumed"]
        else:
            assert f"JobState={states[fault['fault']]}" in details and len(reported) == 1, details
            assert f"SLURM status is: '{states[fault['fault']]}'" in reported[0], reported
        fault["detect_s"] = fault["seen"] - fault["at"]
        print(f"{fault['fault']}: job {fault['job']}, {fault['kept']} shards kept, ", end="")
        print(f"seen after {fault['detect_s']:.1f} s: {reported[0]}")
    assert [f["kept"] for f in faults] == sorted(f["kept"] for f in faults) and faults[0]["kept"] >= 1
    assert log.count("Trying to restart job") == len(states)
    generation_log = (work / "logs/faults/generations" / FAULT_MODEL / "2shot-v2.log").read_text()
    resumed = re.search(r"xmrc: resumed \S+: (\d+) of (\d+) chunks from their shards, (\d+) computed", generation_log)
    assert resumed and int(resumed[1]) >= faults[-1]["kept"], generation_log[-2000:]
    print(f"last retry: {resumed[0]}; whole run {total:.0f} s")
    for name, table in fault_tables(work).items():  # nothing lost, nothing doubled
        pd.testing.assert_frame_equal(table, reference[name], obj=name)
    assert not shards.exists()
