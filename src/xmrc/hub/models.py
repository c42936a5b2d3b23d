"""A registry model on this machine: its weights (given, from the registry, or a fetched snapshot), checked
before anything loads, and the backend a generation job runs it on, with this machine's GPUs locked.

A model directory (built, converted, fine-tuned, or a fetched snapshot) is checked before a loader opens it, so a
damaged one is refused in one line naming it and the file, never half-loaded or a loader's traceback: every
link resolves, every JSON file at its top parses, config.json, tokenizer_config.json, a vocabulary and the
weights are there (model.safetensors, or every shard its index lists), and each safetensors file is as long as
its header says. Headers and sizes only: bytes damaged inside the weights (same size) are not detected here.
"""

from __future__ import annotations

import json
import os
import struct
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
    """A directory source's weights must exist and be whole (`snapshot_problem`): one error line here, not a hub
    lookup or a traceback deep in a loader."""
    if model.source in DIRECTORY_SOURCES:
        if not Path(weights).is_dir():
            raise XmrcError(f"{role} '{model.key}': weights directory {weights} not found")
        if problem := snapshot_problem(weights):
            remedy = "delete it and rerun: the workflow builds it again" if model.source in BUILT else "restore it"
            raise XmrcError(
                f"{role} '{model.key}': weights directory {weights} {problem}; damaged or incomplete: {remedy}"
            )
    return weights


def check_snapshot(model: Model, stamp: str | Path, role: str = "model") -> str:
    """The directory of a fetched snapshot (`xmrc fetch-model`'s stamp), checked as `check_weights` checks."""
    directory = Path(read_stamp(stamp)["path"])
    if problem := snapshot_problem(directory):
        # in a hub cache, <cache>/models--org--name/snapshots/<commit>: its files link to the model folder's blobs
        cache = directory.parents[1] if directory.parent.name == "snapshots" else directory
        raise XmrcError(
            f"{role} '{model.key}': snapshot {directory} {problem}; damaged or incomplete: delete {cache} and "
            f"{stamp}, then fetch it again"
        )
    return str(directory)


BUILT = ("tiny", "finetune", "gguf")  # directory sources the workflow makes (a rule builds them again)
CONFIG, TOKENIZER_CONFIG = "config.json", "tokenizer_config.json"
# the files transformers loads weights from, each alone or as `<name>.index.json` listing its shards
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
# a tokenizer's vocabulary: the fast tokenizer's file, or a slow tokenizer's it can be converted from
VOCABULARIES = ("tokenizer.json", "tokenizer.model", "spiece.model", "vocab.json", "tokenizer.tiktoken")
MAX_SAFETENSORS_HEADER = 100_000_000  # the safetensors format's own limit


def snapshot_problem(directory: str | Path, weights: bool = True) -> str | None:
    """What makes the model directory unusable, as the end of a sentence naming it ("lacks config.json"), or None
    when it is whole (see the module's docstring); `weights` False: its tokenizer only."""
    directory = Path(directory)
    for entry in sorted(directory.iterdir()):
        if entry.is_symlink() and not entry.exists():
            return f"has a broken link {entry.name} (its file in the cache is gone)"
    for entry in sorted(directory.glob("*.json")):
        try:
            json.loads(entry.read_bytes())
        except (OSError, ValueError) as error:
            return f"has an unreadable {entry.name} (not whole JSON: {type(error).__name__})"
    required = [CONFIG, TOKENIZER_CONFIG] if weights else [TOKENIZER_CONFIG]
    missing = [name for name in required if not (directory / name).is_file()]
    if missing:
        return f"lacks {' and '.join(missing)}"
    if not any((directory / name).is_file() for name in VOCABULARIES):
        return f"lacks {VOCABULARIES[0]}"  # the first choice; any one of them would do
    return _weights_problem(directory) if weights else None


def _weights_problem(directory: Path) -> str | None:
    for name in WEIGHT_FILES:
        index = directory / f"{name}.index.json"
        if index.is_file():
            try:
                shards = sorted(set(json.loads(index.read_bytes())["weight_map"].values()))
            except (KeyError, TypeError, AttributeError):
                return f"has an unreadable {index.name} (no weight_map)"
            absent = [shard for shard in shards if not (directory / shard).is_file()]
            if absent:
                more = f" and {len(absent) - 1} more" if len(absent) > 1 else ""
                return f"lacks {absent[0]}{more} (listed in {index.name})"
            return next(filter(None, map(_safetensors_problem, [directory / s for s in shards])), None)
        if (directory / name).is_file():
            return _safetensors_problem(directory / name)
    return f"lacks {WEIGHT_FILES[0]}"  # or its index and shards, or the older pytorch_model.bin


def _safetensors_problem(path: Path) -> str | None:
    """A safetensors file must hold its header (8 bytes of length, then JSON) and exactly the tensor bytes the
    header's offsets end at: a file cut short (a copy or download that stopped) is found without reading it."""
    if path.suffix != ".safetensors":
        return None
    size = path.stat().st_size
    try:
        with open(path, "rb") as source:
            (length,) = struct.unpack("<Q", source.read(8))
            if length > min(size - 8, MAX_SAFETENSORS_HEADER):
                raise ValueError("header longer than the file")
            header = json.loads(source.read(length))
        end = max((tensor["data_offsets"][1] for key, tensor in header.items() if key != "__metadata__"), default=0)
    except (struct.error, ValueError, KeyError, TypeError, IndexError, AttributeError):
        return f"has a damaged {path.name} (no readable safetensors header; {size} bytes)"
    expected = 8 + length + end
    if size != expected:
        return f"has a {'truncated' if size < expected else 'damaged'} {path.name} ({size} of {expected} bytes)"
    return None


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

    if Path(weights).is_dir() and (problem := snapshot_problem(weights, weights=False)):
        raise XmrcError(f"model '{model.key}': weights directory {weights} {problem}; damaged or incomplete")
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
        weights, revision = check_snapshot(model, snapshot), None
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
