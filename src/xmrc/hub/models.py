"""A registry model on this machine: its weights (given, from the registry, or a fetched snapshot), checked
before anything loads, and the backend a generation job runs it on, with this machine's GPUs locked."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

from xmrc.backends import Backend, create_backend
from xmrc.config import DIRECTORY_SOURCES, Model, Registry, model_weights
from xmrc.exceptions import XmrcError
from xmrc.hub.fetch import read_stamp
from xmrc.hub.gpus import claim_gpus
from xmrc.prompts import API_CHAT_TEMPLATE, ChatTemplate, hf_chat_template


def model_and_weights(registry: str | Path, key: str, weights: str | None = None) -> tuple[Model, str]:
    """The registry's model `key` (key or paper name) and what it loads: `weights` if given, else the registry's."""
    model = Registry.load(registry).get(key)
    return model, weights or model_weights(model)


def check_weights(model: Model, weights: str, role: str = "model") -> str:
    """A directory source's weights must exist: one error line here, not a hub lookup deep in a loader."""
    if model.source in DIRECTORY_SOURCES and not Path(weights).is_dir():
        raise XmrcError(f"{role} '{model.key}': weights directory {weights} not found")
    return weights


def local_model_and_weights(
    registry: str | Path, key: str, weights: str | None, purpose: str, role: str = "model"
) -> tuple[Model, str]:
    """model_and_weights of a model that must run here (not an API model), its weights checked; `purpose` says
    what needs them in the error, e.g. "attribution"."""
    model, weights = model_and_weights(registry, key, weights)
    if model.backend != "local":
        raise XmrcError(f"{role} '{model.key}' uses the {model.backend} backend: {purpose} needs local weights")
    return model, check_weights(model, weights, role)


def chat_template(model: Model, weights: str, system_prompt: str | None = None) -> ChatTemplate | None:
    """The chat template a chat model's prompts are wrapped in: its tokenizer's for local weights (with
    `system_prompt` where the template has no default); for an API model, the API's own (prompts sent as they
    are, the provider's default system prompt)."""
    if not model.chat_template:
        return None
    if model.backend != "local":
        return API_CHAT_TEMPLATE
    from xmrc.backends.hf import load_tokenizer  # imports torch and transformers

    return hf_chat_template(load_tokenizer(weights, model.revision), system_prompt)


def choose_backend(model: Model, requested: str) -> str:
    """`auto`: the API backend for API models, otherwise the config's local backend (hf or vllm)."""
    if model.backend == "api":
        if requested not in ("auto", "api"):
            raise XmrcError(f"model '{model.key}' is an API model; it cannot run on the {requested} backend")
        return "api"
    if requested == "api":
        raise XmrcError(f"model '{model.key}' is a local model; the api backend serves only API models")
    return "hf" if requested == "auto" else requested


@dataclass(frozen=True)
class BackendSettings:
    """How a generation job runs its backend (the generate-job options; each backend reads its own)."""

    dtype: str = "bfloat16"
    batch_size: int = 16  # hf
    tensor_parallel_size: int | None = None  # vllm; None: the registry's gpus
    gpu_memory_utilization: float = 0.9  # vllm
    max_model_len: int | None = None  # vllm
    lora: str | None = None  # vllm
    concurrency: int = 8  # api
    max_retries: int = 8  # api
    timeout_s: float = 60.0  # api
    backoff_s: float = 1.0  # api


def open_backend(
    model: Model, kind: str, settings: BackendSettings, weights: str | None = None, snapshot: str | None = None
) -> Backend:
    """The backend `kind` (see choose_backend) serving `model` from `weights` (default: the registry's) or from
    a fetched `snapshot` stamp (offline: its directory, no revision lookup); a local backend first locks this
    machine's GPUs when no scheduler assigned them."""
    if settings.lora and kind != "vllm":
        raise XmrcError("--lora needs the vllm backend (LoRA adapters are served with LoRARequest)")
    _gpus_of_this_job(model, kind)
    if kind == "api":
        return create_backend(
            kind,
            model=model.hub_id,
            provider=model.api_provider or "openai",
            concurrency=settings.concurrency,
            max_retries=settings.max_retries,
            timeout_s=settings.timeout_s,
            backoff_s=settings.backoff_s,
        )
    if snapshot:
        weights, revision = read_stamp(snapshot)["path"], None
    else:
        weights, revision = check_weights(model, weights or model_weights(model)), model.revision
    options = {"weights": weights, "revision": revision, "dtype": settings.dtype}
    if kind == "hf":
        options.update(batch_size=settings.batch_size, gpus=max(model.gpus, 1))
    else:
        options.update(
            tensor_parallel_size=settings.tensor_parallel_size or max(model.gpus, 1),
            gpu_memory_utilization=settings.gpu_memory_utilization,
            max_model_len=settings.max_model_len,
            lora=settings.lora,
        )
    return create_backend(kind, **options)


def _gpus_of_this_job(model: Model, kind: str) -> None:
    """Under SLURM, log the GPUs it assigned; elsewhere a local backend locks free ones (xmrc.hub.gpus)."""
    if os.environ.get("SLURM_JOB_ID"):  # what the scheduler gave this job, for the log
        print(
            f"SLURM job {os.environ['SLURM_JOB_ID']}: GPUs "
            f"{os.environ.get('SLURM_JOB_GPUS') or os.environ.get('CUDA_VISIBLE_DEVICES') or 'none'}",
            file=sys.stderr,
        )
        return
    devices = claim_gpus(max(model.gpus, 0)) if kind != "api" else None
    if devices is not None:
        print(f"GPUs {','.join(map(str, devices))} locked for this job", file=sys.stderr)
