"""The SLURM preflight on scontrol's own output: the CI test cluster's (one node, 2 CPUs, two untyped GPUs,
captured from `scontrol show partition|node --oneliner`) and a two-partition GPU cluster's."""

from __future__ import annotations

import pytest

from helpers import ROOT
from xmrc.exceptions import XmrcError
from xmrc.hub import cluster
from xmrc.hub.cluster import Request

DATA = ROOT / "tests/data/slurm"


def partitions(name: str) -> dict[str, cluster.Partition]:
    return cluster.build_partitions(
        (DATA / f"{name}_partitions.txt").read_text(), (DATA / f"{name}_nodes.txt").read_text()
    )


def test_reads_the_ci_nodes_limits():
    (debug,) = partitions("ci").values()
    assert debug.default and debug.max_time_min is None and debug.allow_accounts is None
    (node,) = debug.nodes
    assert (node.cpus, node.mem_mb, node.gpus) == (2, 24105, {"": 2})
    assert cluster.node_capacity(debug) == (2, 24105)


def test_reads_typed_gpus_time_limits_accounts_and_per_node_caps():
    hpc = partitions("hpc")
    assert cluster.default_partition(hpc).name == "cpu"
    assert hpc["cpu"].max_time_min == 2 * 1440 and hpc["gpu"].max_time_min == 1440
    assert hpc["gpu"].allow_accounts == ("nlp", "vision")
    assert {n.name: n.gpus for n in hpc["gpu"].nodes} == {"g01": {"a100": 8}, "g02": {"v100": 4}}
    assert cluster.node_capacity(hpc["gpu"]) == (32, 480000)  # MaxCPUsPerNode, MaxMemPerNode
    assert hpc["cpu"].nodes[1].state == "DOWN+DRAIN"  # values with spaces (OS=, Reason=) do not shift fields


@pytest.mark.parametrize(
    "text, minutes",
    [
        ("UNLIMITED", None),
        ("30", 30),
        ("01:00:00", 60),
        ("2-00:00:00", 2880),
        ("1-12", 2160),
        ("0:30", 1),
        ("10:00", 10),
    ],
)
def test_slurm_times_in_minutes(text, minutes):
    assert cluster.parse_time_min(text) == minutes


def test_the_issue_example_a_group_of_eight_on_a_two_cpu_node_is_refused_naming_the_group():
    group = Request("group 'scores' (8 jobs of score)", cpus=8, mem_mb=16000, runtime_min=30)
    assert cluster.refusals([group, group], partitions("ci")) == [
        "group 'scores' (8 jobs of score) asks for 8 CPUs, 16000 MB, 30 min; "
        "partition 'debug' nodes hold at most 2 CPUs, 24105 MB (2 of them)"
    ]
    assert cluster.group_cpus(partitions("ci"), {""}) == 2 and cluster.largest_node_mem_mb(partitions("ci")) == 24105
    assert cluster.refusals([Request("group 'scores'", cpus=2, mem_mb=4000)], partitions("ci")) == []


@pytest.mark.parametrize(
    "request_, fragment",
    [
        (
            Request("job 'generate' (model llama-70b)", gpus=4, gpu_model="h100", partition="gpu", account="nlp"),
            "asks for 1 CPU, 0 MB, 4 GPUs h100; partition 'gpu' nodes hold at most 32 CPUs, 480000 MB, 0 GPUs h100 "
            "(GPU types: a100, v100)",
        ),
        (
            Request("job 'generate'", gpus=1, partition="gpus"),
            "asks for partition 'gpus', which does not exist (partitions: cpu, gpu)",
        ),
        (
            Request("job 'finetune'", runtime_min=2000, partition="gpu", account="nlp"),
            "asks for 2000 min; partition 'gpu' allows at most 1440 min",
        ),
        (
            Request("job 'generate'", gpus=1, partition="gpu", account="bio"),
            "charges account 'bio', not allowed on partition 'gpu' (allowed: nlp, vision)",
        ),
        (
            Request("job 'score'", cpus=64, mem_mb=260000),
            "asks for 64 CPUs, 260000 MB; partition 'cpu' nodes hold at most 64 CPUs, 250000 MB",
        ),
    ],
)
def test_jobs_no_node_can_hold_are_refused_in_one_line(request_, fragment):
    (line,) = cluster.refusals([request_], partitions("hpc"))
    assert line == f"{request_.name} {fragment}" and "\n" not in line


def test_groups_are_capped_at_the_smallest_of_their_partitions_largest_nodes():
    hpc = partitions("hpc")
    assert cluster.group_cpus(hpc, {"", "gpu"}) == 32 and cluster.group_cpus(hpc, {"cpu"}) == 64
    assert cluster.group_cpus(hpc, {"nowhere"}) is None and cluster.largest_node_mem_mb(hpc) == 480000


def test_a_job_fits_when_one_node_holds_all_of_it():
    hpc = partitions("hpc")
    fitting = [
        Request("job 'generate'", cpus=32, mem_mb=400000, gpus=8, gpu_model="a100", partition="gpu", account="nlp"),
        Request("job 'generate'", gpus=4, partition="gpu", account="vision", runtime_min=1440),  # any type
        Request("job 'score'", cpus=64, mem_mb=250000, runtime_min=60),
    ]
    assert cluster.refusals(fitting, hpc) == []
    # 8 GPUs of one type on one node; 8 across two nodes of different types do not make a job
    assert cluster.refusals([Request("job", gpus=9, partition="gpu", account="nlp")], hpc)


def test_requests_are_read_as_the_slurm_plugin_turns_resources_into_sbatch_options():
    gpu_job = cluster.request_of(
        "j", {"gpu": 2, "gpu_model": "a100", "cpus_per_gpu": 8, "mem_mb": 9000, "runtime": 90}, 2
    )
    assert (gpu_job.cpus, gpu_job.gpus, gpu_job.gpu_model, gpu_job.runtime_min) == (16, 2, "a100", 90)
    gres_job = cluster.request_of("j", {"gres": "gpu:v100:1", "mem_mb_per_cpu": 1000, "slurm_partition": "gpu"}, 4)
    assert (gres_job.cpus, gres_job.mem_mb, gres_job.gpus, gres_job.gpu_model, gres_job.partition) == (
        4,
        4000,
        1,
        "v100",
        "gpu",
    )


def test_a_host_without_slurm_is_one_line(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(XmrcError, match=r"^cluster preflight: scontrol is not on PATH \(not a SLURM submit host\?\)$"):
        cluster.read_cluster()
