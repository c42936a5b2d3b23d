"""The measured model: LLaMA-3.1-8B's shape with random weights, built through the project's tiny-model builder;
the card's bf16 rate; FLOPs per token; and the shims that let the carried LXT 2.1 import under transformers 5.

The builder (`xmrc.tinymodels.build_tiny_model`) trains the byte-level BPE tokenizer on the bundled XQuAD text
and writes the Llama config with LLaMA-3's special tokens, chat template and stop ids; here that config is
resized to the full shape and the model is initialised straight on the device in the run's dtype (no 16 GB
checkpoint is written or read). The tokenizer has 2048 entries, the model LLaMA-3's 128256: the output rows of
the ids the tokenizer lacks are set to zero, so the random model's greedy choice stays among the ids the
tokenizer can decode (their logits are about N(0, 1.3), the zeros never the largest of 2048).
"""

from __future__ import annotations

import importlib
import types
from dataclasses import dataclass
from pathlib import Path

LLAMA_31_8B = dict(
    hidden_size=4096,
    intermediate_size=14336,
    num_hidden_layers=32,
    num_attention_heads=32,
    num_key_value_heads=8,
    head_dim=128,
    vocab_size=128256,
    max_position_embeddings=131072,
    rms_norm_eps=1e-5,
    tie_word_embeddings=False,
)
# --dry: the builder's own tiny sizes, 4 layers (so conservation has several rows) and a vocabulary 64 entries
# larger than the tokenizer's (so the zeroed output rows are exercised as at full size; None: set from it).
TINY = dict(
    hidden_size=64,
    intermediate_size=128,
    num_hidden_layers=4,
    num_attention_heads=4,
    num_key_value_heads=2,
    head_dim=16,
    vocab_size=None,
    max_position_embeddings=8192,
    rms_norm_eps=1e-5,
    tie_word_embeddings=False,
)
SHAPES = {"llama-3.1-8b": LLAMA_31_8B, "tiny": TINY}

# Dense (no sparsity) bf16 tensor-core TFLOP/s from the vendors' data sheets, matched in this order on the name
# torch reports (the H200 and GH200 have the H100 SXM's compute; PCIe and NVL cards run lower clocks).
CARDS = (
    ("GH200", 989.4),
    ("H200", 989.4),
    ("H100 PCIe", 756.0),
    ("H100 NVL", 835.5),
    ("H100", 989.4),
    ("H800", 989.4),
    ("B200", 2250.0),
    ("A100", 312.0),
    ("L40S", 362.1),
)


def card_rate(name: str) -> float | None:
    """The card's dense bf16 TFLOP/s from CARDS, or None for a card (or CPU) not listed."""
    for pattern, tflops in CARDS:
        if pattern.lower() in name.lower():
            return tflops
    return None


def measured_matmul_tflops(device: str, dtype, size: int, repeats: int = 10) -> float:
    """TFLOP/s of a size^3 matrix product in `dtype` on `device` (mean of `repeats` after warm-ups)."""
    import time

    import torch

    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    for _ in range(3):
        a @ b
    if device == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    if device == "cuda":
        torch.cuda.synchronize()
    return 2 * size**3 * repeats / (time.perf_counter() - start) / 1e12


@dataclass(frozen=True)
class Flops:
    """Forward FLOPs of the model: 2 per weight of every matrix product (decoder layers and output head; the input
    embedding is a lookup) per token, plus attention's QK^T and AV, 4 x width per attended position and layer."""

    linear_params: int
    layers: int
    attention_width: int  # heads x head size

    @classmethod
    def of(cls, model) -> Flops:
        config = model.config
        embedding = model.get_input_embeddings().weight.numel()
        total = sum(p.numel() for p in model.parameters())
        head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
        return cls(total - embedding, config.num_hidden_layers, config.num_attention_heads * head_dim)

    def forward(self, tokens: int, cached: int = 0) -> float:
        """FLOPs of `tokens` new positions after `cached` ones (each new token attends to all before it)."""
        attended = cached * tokens + tokens * (tokens + 1) / 2
        return 2 * self.linear_params * tokens + 4 * self.layers * self.attention_width * attended


def install_shims() -> list[str]:
    """Under transformers 5, what the carried LXT 2.1 (written for 4.x; the workflow pins 4.57.6 for it in
    envs/lxt.yaml) needs to import and run on Llama; the shims installed, named (none under 4.x).

    1. LXT imports `transformers.pytorch_utils.find_pruneable_heads_and_indices` (BERT head pruning, never
       called for Llama) when `lxt.efficient.models` loads; transformers 5 dropped it: a stub that raises.
    2. LXT's attention rule replaces a modeling module's ALL_ATTENTION_FUNCTIONS with a plain dict of wrapped
       functions; transformers 5's Llama asks it `.get_interface(name, default)`: the dict gains that method
       (a lookup with the default, as AttentionInterface does). The rule itself is unchanged.
    """
    import transformers

    if int(transformers.__version__.split(".")[0]) < 5:
        return []
    installed = []
    utils = importlib.import_module("transformers.pytorch_utils")
    for name in ("find_pruneable_heads_and_indices", "prune_linear_layer"):
        if not hasattr(utils, name):

            def removed(*args, _name=name, **kwargs):
                raise NotImplementedError(f"transformers.pytorch_utils.{_name} was removed in transformers 5")

            setattr(utils, name, removed)
            installed.append(f"transformers.pytorch_utils.{name}: a stub (removed in transformers 5; LXT imports it)")
    try:
        from lxt.efficient.models import DEFAULT_MAP
    except ImportError as error:  # not carried: the layer stage reports it
        return [*installed, f"none for LXT ({type(error).__name__}: {error})"]
    wrapped = 0
    for rules in DEFAULT_MAP.values():
        for target, patch in list(rules.items()):
            if isinstance(target, types.ModuleType) and not getattr(patch, "_xmrc_interface", False):
                rules[target] = _with_interface(patch)
                wrapped += 1
    if wrapped:
        installed.append(f"LXT's attention rule: ALL_ATTENTION_FUNCTIONS keeps .get_interface ({wrapped} modules)")
    return installed


class _AttentionFunctions(dict):
    """LXT's dict of wrapped attention functions, answering transformers 5's lookup."""

    def get_interface(self, name, default):
        return self.get(name, default)


def _with_interface(patch):
    def patched(module):
        done = patch(module)
        functions = getattr(module, "ALL_ATTENTION_FUNCTIONS", None)
        if type(functions) is dict:
            module.ALL_ATTENTION_FUNCTIONS = _AttentionFunctions(functions)
        return done

    patched._xmrc_interface = True
    return patched


@dataclass
class Built:
    model: object
    tokenizer: object
    weights: Path  # the builder's output: tokenizer, config, generation config (and its tiny model)
    parameters: int
    flops: Flops
    seconds: float


def build_model(shape: str, device: str, dtype: str, texts: list[str], workdir: Path, seed: int = 0) -> Built:
    """The random model of `shape` on `device` in `dtype`, with the tiny builder's tokenizer and config."""
    import time

    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, GenerationConfig

    from xmrc.backends.hf import load_tokenizer
    from xmrc.tinymodels import build_tiny_model

    started = time.perf_counter()
    weights = build_tiny_model("llama", True, texts, Path(workdir) / "builder", seed=seed)
    tokenizer = load_tokenizer(str(weights))
    config = AutoConfig.from_pretrained(weights)
    for key, value in SHAPES[shape].items():
        setattr(config, key, len(tokenizer) + 64 if value is None else value)
    _set_rope_theta(config, 500000.0)
    torch_dtype = getattr(torch, dtype)
    with torch.random.fork_rng(devices=[]), torch.device(device):
        torch.manual_seed(seed)
        model = AutoModelForCausalLM.from_config(config, dtype=torch_dtype)
    model.generation_config = GenerationConfig.from_pretrained(weights)
    with torch.no_grad():
        model.get_output_embeddings().weight[len(tokenizer) :] = 0
    model.requires_grad_(False)
    model.eval()
    parameters = sum(p.numel() for p in model.parameters())
    if device == "cuda":
        torch.cuda.synchronize()
    return Built(model, tokenizer, weights, parameters, Flops.of(model), time.perf_counter() - started)


def _set_rope_theta(config, theta: float) -> None:
    """LLaMA-3's RoPE base, where either transformers keeps it (4.x: rope_theta; 5.x: rope_parameters)."""
    parameters = getattr(config, "rope_parameters", None)
    if isinstance(parameters, dict):
        parameters["rope_theta"] = theta
    else:
        config.rope_theta = theta
