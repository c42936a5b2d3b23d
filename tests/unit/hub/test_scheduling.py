"""What generation, finetune and layer jobs ask the scheduler for; which registry fields re-run jobs."""

from __future__ import annotations

import dataclasses

import pytest

from helpers import ROOT
from xmrc.config import Registry, load_config
from xmrc.hub import scheduling

REGISTRY = Registry.load(ROOT / "config/models.yaml")
PAPER = load_config(ROOT / "config/config.yaml")["backends"]


@pytest.mark.parametrize(
    "key, gpus",
    [
        ("llama-3.1-8b", 1),
        ("gemma-2-it-9b", 1),
        ("qwen-2.5-7b", 1),
        ("llama-3.1-70b", 4),
        ("qwen-2.5-instruct-72b", 4),
        ("gpt-4o", 0),
        ("deepseek-v3", 0),
        ("tiny-llama-chat", 0),
    ],
)
def test_gpus_per_model(key, gpus):
    assert scheduling.job_gpus(REGISTRY.get(key)) == gpus


def test_api_models_never_ask_for_gpus_or_gpu_types():
    for model in REGISTRY.select("main"):
        if model.backend == "api":
            assert scheduling.job_gpus(model) == 0
            assert scheduling.job_gpu_model(model, {**PAPER, "gpu_model": "a100"}) == ""
            assert scheduling.job_mem_mb(model, PAPER) == 2048


def test_memory_and_runtime_grow_with_size_and_attempt():
    small, large = REGISTRY.get("llama-3.1-8b"), REGISTRY.get("llama-3.1-70b")
    assert scheduling.job_mem_mb(small, PAPER) < scheduling.job_mem_mb(large, PAPER)
    assert scheduling.job_mem_mb(small, PAPER, attempt=3) == 2 * scheduling.job_mem_mb(small, PAPER)
    assert scheduling.job_runtime_min(large, PAPER, attempt=2) == 2 * scheduling.job_runtime_min(large, PAPER)
    pinned = dataclasses.replace(small, mem_gb=100, runtime_min=30)
    assert scheduling.job_mem_mb(pinned, PAPER) == 102400 and scheduling.job_runtime_min(pinned, PAPER) == 30
    assert scheduling.job_gpu_model(small, {**PAPER, "gpu_model": "h100"}) == "h100"


def test_finetune_resources_come_from_its_registry_block():
    def resources(model):
        return (
            scheduling.finetune_gpus(model),
            scheduling.finetune_threads(model),
            scheduling.finetune_mem_mb(model),
            scheduling.finetune_runtime_min(model),
        )

    assert resources(REGISTRY.get("llama-3.1-tuned-8b")) == (8, 32, 256 * 1024, 24 * 60)  # 4 workers per GPU
    assert resources(REGISTRY.get("tiny-llama-tulu-sft")) == (0, 1, 4 * 1024, 60)  # on CPU: one worker
    defaults = dataclasses.replace(REGISTRY.get("tiny-llama-tulu-sft"), finetune={"method": "full"})
    assert resources(defaults) == (1, 4, 64 * 1024, 24 * 60)


def test_layer_extraction_memory_grows_with_size():
    assert scheduling.layer_mem_mb(REGISTRY.get("tiny-llama-base")) == 4096
    assert scheduling.layer_mem_mb(REGISTRY.get("llama-3.1-8b")) == 4096 + 8 * 1024


def test_entry_digest_ignores_scheduling_fields_only():
    model = REGISTRY.get("llama-3.1-8b")
    digest = scheduling.entry_digest(model)
    assert scheduling.entry_digest(dataclasses.replace(model, gpus=8, mem_gb=300, runtime_min=5)) == digest
    assert scheduling.entry_digest(dataclasses.replace(model, paper_name="Another-Name")) == digest
    assert scheduling.entry_digest(dataclasses.replace(model, revision="0123abc")) != digest
    assert scheduling.entry_digest(dataclasses.replace(model, chat_template=True)) != digest
