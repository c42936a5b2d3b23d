# Preflight of a SLURM run (xmrc.hub.cluster; docs/slurm.md, "Faults"): before the first submission the
# partitions are read with scontrol, groups are sized to what one node holds, and any job or group that no node
# could ever hold stops the run with one line naming it (SLURM would queue it PENDING for ever). Only the main
# Snakemake process under the slurm executor checks; the jobs' own Snakemake (slurm-jobstep) and dry runs do not.
from xmrc.hub import cluster as slurm_cluster


def slurm_units(dag):
    """Each SLURM job the run will submit: a group of jobs, or a job; local rules are not submitted."""
    units = {}
    for job in dag.needrun_jobs():
        unit = dag.get_job_group(job) or job
        if not unit.is_local:
            units[unit] = None
    return list(units)


def slurm_unit_name(unit):
    if unit.is_group():
        rules = ", ".join(sorted({job.rule.name for job in unit.jobs}))
        return f"group '{unit.groupid}' ({len(unit.jobs)} jobs of {rules})"
    model = unit.wildcards_dict.get("model")
    return f"job '{unit.rule.name}'" + (f" (model {model})" if model else "")


def size_groups(partitions, groups):
    """Cap the CPUs Snakemake gives a group at one node of its partition (its jobs then run in layers that fit),
    through the workflow's global limits, which group jobs are laid out against. Those limits also cap what a job
    evaluated later asks for (a retry): CPUs (threads) at the groups' node, memory only at the largest node of
    the cluster, so no retry asks for less memory than some node holds; a group still too large is refused."""
    names = {str(next(iter(group.jobs)).resources.get("slurm_partition") or "") for group in groups}
    cpus = slurm_cluster.group_cpus(partitions, names)
    if cpus is None:
        return
    mem_mb = slurm_cluster.largest_node_mem_mb(partitions)
    limit = workflow.global_resources
    cores = limit["_cores"].value
    limit["_cores"] = min(cores, cpus) if cores else cpus
    current = limit.get("mem_mb")
    limit["mem_mb"] = min(current.value, mem_mb) if current is not None and current.value else mem_mb
    print(
        f"xmrc: cluster preflight: groups of jobs ask for at most {limit['_cores'].value} CPUs and "
        f"{limit['mem_mb'].value} MB (one node)",
        file=sys.stderr,
    )


def slurm_requests(units):
    """The SLURM requests of jobs or groups; one whose resources cannot be worked out yet (they depend on files
    not made) is left to SLURM, with a warning."""
    requests = []
    for unit in units:
        try:
            requests.append(slurm_cluster.request_of(slurm_unit_name(unit), unit.resources, unit.threads))
        except Exception as error:
            print(f"xmrc: warning: cluster preflight: {slurm_unit_name(unit)} not checked: {error}", file=sys.stderr)
    return requests


def cluster_preflight(dag):
    try:
        partitions = slurm_cluster.read_cluster()
    except XmrcError as error:
        print(f"xmrc: error: {error} (config cluster.preflight: false skips the check)", file=sys.stderr)
        sys.exit(1)
    units = slurm_units(dag)
    jobs = [unit for unit in units if not unit.is_group()]
    groups = [unit for unit in units if unit.is_group()]
    requests = slurm_requests(jobs)  # before any sizing: what each job asks for as written
    if config["cluster"]["size_groups"] and groups:
        size_groups(partitions, groups)
    requests += slurm_requests(groups)
    refused = slurm_cluster.refusals(requests, partitions)
    for line in refused:
        print(f"xmrc: error: cluster preflight: {line}", file=sys.stderr)
    if refused:
        sys.exit(1)
    print(f"xmrc: cluster preflight: {len(requests)} SLURM jobs fit the cluster's partitions", file=sys.stderr)


onstart:
    if getattr(workflow.executor_plugin, "name", "") == "slurm" and config["cluster"]["preflight"]:
        cluster_preflight(workflow.dag)
