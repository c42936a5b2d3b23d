"""`xmrc check-cluster`: what the SLURM cluster's partitions can give, and whether a job of a given shape fits.

The workflow runs the same check on every job and group before its first submission (workflow/rules/cluster.smk).
"""

from __future__ import annotations

from xmrc.exceptions import XmrcError
from xmrc.hub import cluster

REQUEST_KEYS = {
    "cpus": "cpus_per_task",
    "mem_mb": "mem_mb",
    "runtime": "runtime",
    "gpu": "gpu",
    "gpu_model": "gpu_model",
    "partition": "slurm_partition",
    "account": "slurm_account",
}


def parse_job(text: str) -> cluster.Request:
    """'cpus=8,mem_mb=16000,gpu=1,gpu_model=a100,runtime=60,partition=gpu,account=x' as a request."""
    resources = {}
    for part in filter(None, text.split(",")):
        key, _, value = part.partition("=")
        if key not in REQUEST_KEYS or not value:
            raise XmrcError(f"--job: '{part}' is not one of {', '.join(f'{k}=...' for k in REQUEST_KEYS)}")
        if key not in {"gpu_model", "partition", "account"} and not value.isdigit():
            raise XmrcError(f"--job: {key} must be a whole number, not '{value}'")
        resources[REQUEST_KEYS[key]] = int(value) if value.isdigit() else value
    return cluster.request_of(f"job '{text}'", resources, 1)


def cmd_check_cluster(args) -> None:
    """print the SLURM partitions' limits (scontrol) and check jobs against them (exit 2 when one can never start)"""
    partitions = cluster.read_cluster()
    for line in cluster.describe(partitions):
        print(line)
    refused = cluster.refusals([parse_job(job) for job in args.job], partitions)
    if refused:
        raise XmrcError(" | ".join(refused))
    for job in args.job:
        print(f"fits: {job}")


def register(command) -> None:
    p = command("check-cluster", cmd_check_cluster)
    p.add_argument(
        "--job",
        action="append",
        default=[],
        metavar="SHAPE",
        help="a job to check, e.g. cpus=8,mem_mb=64000,gpu=4,gpu_model=a100,runtime=1440,partition=gpu",
    )
