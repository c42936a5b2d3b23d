"""What a job asks a scheduler for (generation, finetuning, layer extraction), and which registry fields change
its outputs.

Used by the workflow's resource and params functions (workflow/rules/*.smk); plain functions so they
are tested without Snakemake. GPUs come from the registry (`gpus`: 1 for 7-16B, 4 for 70B+, 0 for API and
tiny models); host memory and runtime from the registry's `mem_gb` / `runtime_min` where given, otherwise
from `size_b`, and both grow with each retry (`attempt`), so a job killed for memory or time comes back bigger
and resumes from its shards. A vLLM generation job's engine grows with the attempt too (the rule passes it as
generate-job --attempt, `xmrc.backends.vllm.retry_settings`): on CPU its KV cache, 1 GiB more per attempt,
which the host memory's growth of half the base per attempt covers from a base of 2 GB; on GPUs its batch
halves. A finetune takes its resources from its registry `finetune` block.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json

from xmrc.config import Model

# Registry fields that only tell the scheduler what to reserve: changing them must not re-run a job.
SCHEDULING_FIELDS = frozenset({"gpus", "mem_gb", "runtime_min", "main", "size_b", "gated"})
# Fields that only name the model in reports (the paper comparison's `paper_name`): no job depends on them.
REPORT_FIELDS = frozenset({"paper_name"})


def uses_gpu(model: Model) -> bool:
    return model.backend == "local" and model.gpus > 0


def job_gpus(model: Model) -> int:
    return model.gpus if uses_gpu(model) else 0


def job_mem_mb(model: Model, settings: dict, attempt: int = 1) -> int:
    if model.backend == "api":
        base_gb = 2.0  # HTTP client only
    elif model.mem_gb:
        base_gb = model.mem_gb
    else:
        base_gb = settings["mem_gb_base"] + settings["mem_gb_per_billion"] * (model.size_b or 0)
    return int(1024 * base_gb * (1 + 0.5 * (attempt - 1)))


def job_runtime_min(model: Model, settings: dict, attempt: int = 1) -> int:
    if model.runtime_min:
        base = model.runtime_min
    elif model.backend == "api":
        base = settings["runtime_min_base"] * 4  # rate limits, not compute, bound API jobs
    else:
        base = settings["runtime_min_base"] + settings["runtime_min_per_billion"] * (model.size_b or 0)
    return int(base * attempt)


def job_gpu_model(model: Model, settings: dict) -> str:
    """The GPU type to ask for ('' = any); only GPU jobs ask."""
    return (settings.get("gpu_model") or "") if uses_gpu(model) else ""


def entry_digest(model: Model) -> str:
    """Digest of the registry fields that change a model's prompts or generations (not scheduling ones), for
    Snakemake params: editing one model's entry re-runs that model's jobs only."""
    fields = {k: v for k, v in dataclasses.asdict(model).items() if k not in SCHEDULING_FIELDS | REPORT_FIELDS}
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:16]


def finetune_gpus(model: Model) -> int:
    return model.finetune.get("gpus", 1)


def finetune_threads(model: Model) -> int:
    """Data loading and tokenisation workers per GPU; one on CPU (the smoke run trains both tiny models at once)."""
    return max(1, 4 * finetune_gpus(model))


def finetune_mem_mb(model: Model) -> int:
    return 1024 * model.finetune.get("mem_gb", 64)


def finetune_runtime_min(model: Model) -> int:
    return int(60 * model.finetune.get("runtime_h", 24))


def layer_mem_mb(model: Model) -> int:
    """Host memory of a layer-analysis extraction job: a floor plus 1 GB per billion parameters (the weights
    stream to the GPUs)."""
    return 4096 + int(1024 * (model.size_b or 0))
