"""The GPU check (bench/gpu, docs/gpu.md) in its CPU dry mode: tiny shapes, the same code path as on the GPU, so
the check cannot rot while no GPU is lent. About 10 s of CPU; the shape and rate helpers without building a model.
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]  # tests/unit/ -> the checkout


@pytest.fixture
def gpu(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT))
    import bench.gpu

    return bench.gpu


def test_dry_run_measures_every_stage(gpu, tmp_path):
    from bench.gpu.__main__ import main

    assert main(["--dry", "--out", str(tmp_path)]) == 0
    report = json.loads((tmp_path / "gpu-check.json").read_text(encoding="utf-8"))
    assert report["ok"] and not report["failures"]
    assert set(report["status"]) == {"0 model", "1 oracle", "2 layers", "3 generation", "4 LoRA step", "5 projection"}
    assert all(s == "ok" or s.startswith("stopped by its budget") for s in report["status"].values())
    results = report["results"]
    oracle = results["1 oracle"]
    # float32 under the suite's transformers 4.57.6: the batched path is Captum's arithmetic in both modes (under 5.17
    # Captum's token mode drifts, docs/gpu.md)
    for mode in ("token", "onepass"):
        assert oracle[f"{mode}_same_sequence"] == oracle[f"{mode}_same_step"] == oracle[f"{mode}_compared"] >= 1
        assert oracle[f"{mode}_max_abs_difference"] < 1e-4
    layers = results["2 layers"]
    assert len(layers["conservation_per_layer"]) == 4  # embeddings + decoder layers 1..3 of the 4-layer model
    assert all(0.5 < ratio < 1.5 for ratio in layers["conservation_per_layer"])
    assert layers["relevance_s_per_prompt"] > 0 and layers["hidden_s_per_prompt"] > 0
    generation = results["3 generation"]
    assert generation["new_tokens"] == 3 * generation["prompts"] and generation["ratio"] > 0
    assert results["4 LoRA step"]["s_per_step"] > 0 and results["4 LoRA step"]["trainable"] > 0
    projection = results["5 projection"]
    assert projection["oracle_batched_gpu_h"] > projection["oracle_bound_gpu_h"] > 0
    assert projection["layers_gpu_h"] > 0 and projection["lora_gpu_h_10000"] > 0
    markdown = (tmp_path / "gpu-check.md").read_text(encoding="utf-8")
    assert "| 3 generation | prefill limit |" in markdown and "measured / limit" in markdown


def test_command_answers_without_a_gpu():
    help_text = subprocess.run(
        [sys.executable, "-m", "bench.gpu", "--help"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    assert "--dry" in help_text and "projection" in help_text


def test_card_rates_and_the_8b_shape(gpu):
    import torch
    from bench.gpu.model import LLAMA_31_8B, Flops, card_rate
    from transformers import AutoModelForCausalLM, LlamaConfig

    assert card_rate("NVIDIA H100 80GB HBM3") == card_rate("NVIDIA H200") == 989.4
    assert card_rate("NVIDIA H100 PCIe") == 756.0 and card_rate("cpu") is None
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(LlamaConfig(**LLAMA_31_8B))
    assert sum(p.numel() for p in model.parameters()) == 8_030_261_248  # LLaMA-3.1-8B's parameter count
    flops = Flops.of(model)
    assert flops.linear_params == 8_030_261_248 - 128256 * 4096
    assert flops.forward(1) == 2 * flops.linear_params + 4 * 32 * 4096
