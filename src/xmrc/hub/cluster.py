"""Preflight of a SLURM run: what the cluster's partitions can give, and which jobs could never start there.

SLURM accepts a job that no node can hold and leaves it PENDING for ever (reason `PartitionConfig`,
`Resources`); Snakemake then waits without a word. Before the first submission the workflow reads the
partitions and their nodes (`scontrol show partition|node --oneliner`: CPUs and memory per node, GPUs and
their types, the time limit, the accounts allowed, whether the partition exists) and refuses, one line per
job or group, whatever asks for more than one node of its partition can give. Groups are sized first: the
CPUs and memory a group may ask for are capped at what the partition's largest node holds
(`node_capacity`), so Snakemake runs a group's jobs in layers that fit instead of asking for the sum.

Parsing and checking are plain functions over text and `Request`s, tested without SLURM; `read_cluster`
runs the two commands.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from xmrc.exceptions import XmrcError

UNLIMITED = None
COMMAND_TIMEOUT_S = 30


@dataclass(frozen=True)
class Node:
    name: str
    cpus: int
    mem_mb: int
    gpus: dict[str, int] = field(default_factory=dict)  # GPU type ("" untyped) -> count
    state: str = "IDLE"

    def gpu_count(self, gpu_model: str = "") -> int:
        if not gpu_model:
            return sum(self.gpus.values())
        return self.gpus.get(gpu_model, 0)


@dataclass(frozen=True)
class Partition:
    name: str
    nodes: tuple[Node, ...]
    default: bool = False
    state: str = "UP"
    max_time_min: int | None = UNLIMITED
    max_cpus_per_node: int | None = UNLIMITED
    max_mem_per_node_mb: int | None = UNLIMITED
    allow_accounts: tuple[str, ...] | None = None  # None: all accounts
    deny_accounts: tuple[str, ...] = ()

    def node_cpus(self, node: Node) -> int:
        return min(node.cpus, self.max_cpus_per_node or node.cpus)

    def node_mem_mb(self, node: Node) -> int:
        return min(node.mem_mb, self.max_mem_per_node_mb or node.mem_mb)


@dataclass(frozen=True)
class Request:
    """What one SLURM job (a Snakemake job or group of jobs) asks for. `partition` and `account` "": the
    cluster's default; `runtime_min` 0: the partition's default time."""

    name: str
    cpus: int = 1
    mem_mb: int = 0
    runtime_min: int = 0
    gpus: int = 0
    gpu_model: str = ""
    partition: str = ""
    account: str = ""

    def asks(self) -> str:
        parts = [f"{self.cpus} CPU{'s' if self.cpus != 1 else ''}", f"{self.mem_mb} MB"]
        if self.gpus:
            parts.append(
                f"{self.gpus} GPU{'s' if self.gpus != 1 else ''}" + (f" {self.gpu_model}" if self.gpu_model else "")
            )
        if self.runtime_min:
            parts.append(f"{self.runtime_min} min")
        return ", ".join(parts)


# --- reading scontrol's one-line records ---

FIELD = re.compile(r"(?:^|\s)([A-Za-z][A-Za-z0-9_:/.]*)=")


def parse_records(text: str) -> list[dict[str, str]]:
    """`scontrol show ... --oneliner` output: one dict of Key=Value per line (values may contain spaces)."""
    records = []
    for line in text.splitlines():
        marks = list(FIELD.finditer(line))
        if not marks:
            continue
        record = {}
        for mark, following in zip(marks, [*marks[1:], None]):
            end = following.start() if following else len(line)
            record[mark.group(1)] = line[mark.end() : end].strip()
        records.append(record)
    return records


def parse_gres_gpus(gres: str) -> dict[str, int]:
    """GPUs in a node's Gres ("gpu:2", "gpu:a100:4(S:0-1)", "gpu:a100:2,gpu:v100:1"): type -> count."""
    gpus: dict[str, int] = {}
    for entry in (gres or "").split(","):
        parts = re.sub(r"\(.*?\)", "", entry).strip().split(":")
        if not parts or parts[0] != "gpu" or len(parts) < 2:
            continue
        kind, count = ("", parts[1]) if len(parts) == 2 else (parts[1], parts[2])
        try:
            gpus[kind] = gpus.get(kind, 0) + int(re.match(r"\d+", count).group())
        except AttributeError:
            continue
    return gpus


def parse_time_min(value: str) -> int | None:
    """A SLURM time ("UNLIMITED", "30", "1:00:00", "2-00:00:00", "1-12") in minutes; None for no limit."""
    value = (value or "").strip()
    if not value or value.upper() in {"UNLIMITED", "INFINITE", "NONE"}:
        return UNLIMITED
    days = 0
    if "-" in value:
        day_text, value = value.split("-", 1)
        days = int(day_text)
        numbers = [int(part) for part in value.split(":")] + [0, 0]
        hours, minutes, seconds = numbers[:3]
    else:
        numbers = [int(part) for part in value.split(":")]
        hours, minutes, seconds = {1: (0, numbers[0], 0), 2: (0, *numbers), 3: tuple(numbers)}[len(numbers)]
    return days * 1440 + hours * 60 + minutes + (1 if seconds else 0)


def _limit(value: str) -> int | None:
    return int(value) if value and value.isdigit() else UNLIMITED


def _names(value: str) -> tuple[str, ...] | None:
    return None if not value or value.upper() == "ALL" else tuple(value.split(","))


def build_partitions(partition_text: str, node_text: str) -> dict[str, Partition]:
    """Partitions (by name) from `scontrol show partition -o` and `scontrol show node -o` output."""
    nodes = {}
    membership: dict[str, list[str]] = {}
    for record in parse_records(node_text):
        name = record.get("NodeName", "")
        node = Node(
            name=name,
            cpus=int(record.get("CPUEfctv") or record.get("CPUTot") or 0),
            mem_mb=int(record.get("RealMemory") or 0),
            gpus=parse_gres_gpus(record.get("Gres", "")),
            state=record.get("State", ""),
        )
        nodes[name] = node
        for partition in filter(None, record.get("Partitions", "").split(",")):
            membership.setdefault(partition, []).append(name)
    partitions = {}
    for record in parse_records(partition_text):
        name = record.get("PartitionName", "")
        partitions[name] = Partition(
            name=name,
            nodes=tuple(nodes[n] for n in membership.get(name, []) if n in nodes),
            default=record.get("Default", "NO") == "YES",
            state=record.get("State", "UP"),
            max_time_min=parse_time_min(record.get("MaxTime", "")),
            max_cpus_per_node=_limit(record.get("MaxCPUsPerNode", "")),
            max_mem_per_node_mb=_limit(record.get("MaxMemPerNode", "")),
            allow_accounts=_names(record.get("AllowAccounts", "")),
            deny_accounts=_names(record.get("DenyAccounts", "")) or (),
        )
    return partitions


def read_cluster(run: Callable[..., subprocess.CompletedProcess] = subprocess.run) -> dict[str, Partition]:
    """The cluster's partitions, read with scontrol; one error line when SLURM cannot be asked."""
    texts = []
    for kind in ("partition", "node"):
        command = ["scontrol", "show", kind, "--oneliner"]
        try:
            done = run(command, capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S)
        except FileNotFoundError:
            raise XmrcError("cluster preflight: scontrol is not on PATH (not a SLURM submit host?)") from None
        except subprocess.TimeoutExpired:
            raise XmrcError(
                f"cluster preflight: `{' '.join(command)}` did not answer in {COMMAND_TIMEOUT_S} s"
            ) from None
        if done.returncode != 0:
            reason = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
            raise XmrcError(f"cluster preflight: `{' '.join(command)}` failed: {reason[0]}")
        texts.append(done.stdout)
    partitions = build_partitions(*texts)
    if not partitions:
        raise XmrcError("cluster preflight: scontrol lists no partition")
    return partitions


# --- checking ---


def default_partition(partitions: dict[str, Partition]) -> Partition | None:
    return next((p for p in partitions.values() if p.default), None)


def partition_named(name: str, partitions: dict[str, Partition]) -> Partition | None:
    """The partition a job names ("": the cluster's default), None when there is no such partition."""
    return partitions.get(name) if name else default_partition(partitions)


def node_capacity(partition: Partition) -> tuple[int, int]:
    """The most CPUs and memory (MB) one node of `partition` can give a job: what a group may ask for."""
    if not partition.nodes:
        return 0, 0
    return (
        max(partition.node_cpus(n) for n in partition.nodes),
        max(partition.node_mem_mb(n) for n in partition.nodes),
    )


def _fits(request: Request, partition: Partition, node: Node) -> bool:
    return (
        request.cpus <= partition.node_cpus(node)
        and request.mem_mb <= partition.node_mem_mb(node)
        and request.gpus <= node.gpu_count(request.gpu_model)
    )


def _offer(partition: Partition, request: Request) -> str:
    """What the partition's nodes can give, in the terms the request asks."""
    if not partition.nodes:
        return f"partition '{partition.name}' has no nodes"
    cpus, mem = node_capacity(partition)
    offer = f"{cpus} CPUs, {mem} MB"
    if request.gpus:
        most = max(n.gpu_count(request.gpu_model) for n in partition.nodes)
        kinds = sorted({f"{kind or 'untyped'}" for n in partition.nodes for kind in n.gpus})
        offer += f", {most} GPUs" + (f" {request.gpu_model}" if request.gpu_model else "")
        offer += f" (GPU types: {', '.join(kinds) or 'none'})"
    return f"partition '{partition.name}' nodes hold at most {offer}"


def refusal(request: Request, partitions: dict[str, Partition]) -> str | None:
    """Why `request` could never start on this cluster (one line), or None when some node can hold it."""
    partition = partition_named(request.partition, partitions)
    if partition is None:
        if request.partition:
            names = ", ".join(sorted(partitions)) or "none"
            return (
                f"{request.name} asks for partition '{request.partition}', which does not exist (partitions: {names})"
            )
        return f"{request.name} names no partition and the cluster has no default partition"
    if request.account:
        if partition.allow_accounts is not None and request.account not in partition.allow_accounts:
            allowed = ", ".join(partition.allow_accounts)
            where = f"partition '{partition.name}'"
            return f"{request.name} charges account '{request.account}', not allowed on {where} (allowed: {allowed})"
        if request.account in partition.deny_accounts:
            return f"{request.name} charges account '{request.account}', denied on partition '{partition.name}'"
    if partition.max_time_min is not None and request.runtime_min > partition.max_time_min:
        return (
            f"{request.name} asks for {request.runtime_min} min; partition '{partition.name}' allows at most "
            f"{partition.max_time_min} min"
        )
    if not any(_fits(request, partition, node) for node in partition.nodes):
        return f"{request.name} asks for {request.asks()}; {_offer(partition, request)}"
    return None


def refusals(requests: Iterable[Request], partitions: dict[str, Partition]) -> list[str]:
    """One line per distinct refused request (jobs of one rule that ask the same are named once, counted)."""
    counts: dict[str, int] = {}
    for request in requests:
        line = refusal(request, partitions)
        if line is not None:
            counts[line] = counts.get(line, 0) + 1
    return [line + (f" ({count} of them)" if count > 1 else "") for line, count in counts.items()]


def describe(partitions: dict[str, Partition]) -> list[str]:
    """The partitions as a user reads them: one line each."""
    lines = []
    for partition in partitions.values():
        cpus, mem = node_capacity(partition)
        gpus = sorted({f"{kind or 'gpu'}:{count}" for n in partition.nodes for kind, count in n.gpus.items()})
        limit = "unlimited" if partition.max_time_min is None else f"{partition.max_time_min} min"
        accounts = "all" if partition.allow_accounts is None else ",".join(partition.allow_accounts)
        lines.append(
            f"{partition.name}{' (default)' if partition.default else ''}: {partition.state}, "
            f"{len(partition.nodes)} node(s), at most {cpus} CPUs and {mem} MB per node, "
            f"GPUs {' '.join(gpus) or 'none'}, "
            f"time limit {limit}, accounts {accounts}"
        )
    return lines


def gres_gpus(gres: str) -> tuple[int, str]:
    """GPU count and type of a job's `gres` resource ("gpu:2", "gpu:a100:1"); (0, "") without GPUs."""
    gpus = parse_gres_gpus(gres)
    if not gpus:
        return 0, ""
    kind, count = next(iter(gpus.items()))
    return count, kind


def request_of(name: str, resources: Mapping[str, Any], threads: int) -> Request:
    """The SLURM request of a job or group from its Snakemake resources, as snakemake-executor-plugin-slurm
    turns them into sbatch options (cpus_per_task, or cpus_per_gpu x GPUs, else the threads; mem_mb or
    mem_mb_per_cpu; runtime in minutes; gpu/gpu_model or gres; slurm_partition; slurm_account)."""
    gpus = int(resources.get("gpu") or 0)
    gpu_model = str(resources.get("gpu_model") or "")
    if not gpus and resources.get("gres"):
        gpus, gpu_model = gres_gpus(str(resources["gres"]))
    if resources.get("cpus_per_task"):
        cpus = int(resources["cpus_per_task"])
    elif gpus and resources.get("cpus_per_gpu"):
        cpus = gpus * int(resources["cpus_per_gpu"])
    else:
        cpus = int(threads or 1)
    mem_mb = int(resources.get("mem_mb") or 0)
    if resources.get("mem_mb_per_cpu"):
        mem_mb = int(resources["mem_mb_per_cpu"]) * cpus
    runtime = resources.get("runtime") or 0
    return Request(
        name=name,
        cpus=max(1, cpus),
        mem_mb=mem_mb,
        runtime_min=int(runtime) if str(runtime).isdigit() else 0,
        gpus=gpus,
        gpu_model=gpu_model,
        partition=str(resources.get("slurm_partition") or ""),
        account=str(resources.get("slurm_account") or ""),
    )


def group_cpus(partitions: dict[str, Partition], names: Iterable[str]) -> int | None:
    """The CPUs a group may ask for: the smallest of the largest nodes of the groups' partitions (`names`, ""
    for the default one); None when none of them exists or has nodes."""
    named = (partition_named(name, partitions) for name in names)
    cpus = [node_capacity(partition)[0] for partition in named if partition]
    return min(filter(None, cpus), default=None)


def largest_node_mem_mb(partitions: dict[str, Partition]) -> int:
    """The most memory one node of the cluster holds: no job can be given more."""
    return max((node_capacity(partition)[1] for partition in partitions.values()), default=0)
