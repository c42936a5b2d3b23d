"""Tiny randomly initialised models of real architectures, for offline smoke runs and tests.

The models are useless as readers, but they exercise exactly the code path of the real checkpoints:
they are saved with ``save_pretrained`` and load back through ``AutoTokenizer`` /
``AutoModelForCausalLM``, with each family's own special tokens, chat template and stop tokens, so a
workflow bug that depends on the family (no BOS for Qwen, no system role for Gemma, several stop ids)
shows up here rather than on a GPU node.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from xmrc.exceptions import XmrcError

ARCHITECTURES = ("llama", "qwen2", "mistral", "gemma2")

# Small enough for < 2 MB of float32 weights at the default vocabulary, fast to build on CPU.
_SIZES = dict(
    hidden_size=64,
    intermediate_size=128,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    head_dim=16,
    max_position_embeddings=8192,
)
MODEL_MAX_LENGTH = 8192


@dataclass(frozen=True)
class _Family:
    specials: tuple[str, ...]  # in id order, so the ids are stable across builds
    bos: str | None  # None: the family prepends no BOS (Qwen2)
    eos_base: str
    eos_chat: str  # the tokenizer's eos_token in the chat checkpoint
    end_of_turn: str  # where chat generation must stop
    pad: str
    chat_template: str


# The templates follow the published ones, trimmed of tool use. They are written with "\\n" so the
# Jinja source, like the real tokenizer_config.json ones, carries escapes rather than raw newlines.
_LLAMA_TEMPLATE = (
    "{{- bos_token }}"
    "{%- for message in messages %}"
    "{{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n'"
    " + message['content'] | trim + '<|eot_id|>' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{%- endif %}"
)

_QWEN2_TEMPLATE = (
    "{%- for message in messages %}"
    "{%- if loop.first and message['role'] != 'system' %}"
    "{{- '<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' }}"
    "{%- endif %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)

_ALTERNATE = (
    "{%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{- raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}"
    "{%- endif %}"
)

# Mistral has no system turn: like the v0.2+ templates, a system message is folded into the first
# user turn. The prompt ends with [/INST], so add_generation_prompt has nothing to add.
_MISTRAL_TEMPLATE = (
    "{%- if messages[0]['role'] == 'system' %}"
    "{%- set system_message = messages[0]['content'] + '\\n\\n' %}{%- set loop_messages = messages[1:] %}"
    "{%- else %}{%- set system_message = '' %}{%- set loop_messages = messages %}{%- endif %}"
    "{{- bos_token }}"
    "{%- for message in loop_messages %}" + _ALTERNATE + "{%- if message['role'] == 'user' %}"
    "{%- if loop.first %}{{- '[INST] ' + system_message + message['content'] + ' [/INST]' }}"
    "{%- else %}{{- '[INST] ' + message['content'] + ' [/INST]' }}{%- endif %}"
    "{%- else %}{{- ' ' + message['content'] + eos_token }}{%- endif %}"
    "{%- endfor %}"
)

# Gemma rejects a system role, exactly as the published Gemma-2 template does, so the workflow has to
# handle that case for the real model too (e.g. by putting the instruction in the user turn).
_GEMMA2_TEMPLATE = (
    "{{- bos_token }}"
    "{%- if messages[0]['role'] == 'system' %}{{- raise_exception('System role not supported') }}{%- endif %}"
    "{%- for message in messages %}"
    + _ALTERNATE
    + "{%- set role = 'model' if message['role'] == 'assistant' else message['role'] %}"
    "{{- '<start_of_turn>' + role + '\\n' + message['content'] | trim + '<end_of_turn>\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<start_of_turn>model\\n' }}{%- endif %}"
)

_SPECIALS = {
    "llama": (
        "<|begin_of_text|>",
        "<|end_of_text|>",
        "<|start_header_id|>",
        "<|end_header_id|>",
        "<|eot_id|>",
        "<|finetune_right_pad_id|>",
    ),
    "qwen2": ("<|endoftext|>", "<|im_start|>", "<|im_end|>"),
    "mistral": ("<pad>", "<s>", "</s>", "[INST]", "[/INST]"),
    "gemma2": ("<pad>", "<eos>", "<bos>", "<start_of_turn>", "<end_of_turn>"),
}

_CHAT_TEMPLATES = {
    "llama": _LLAMA_TEMPLATE,
    "qwen2": _QWEN2_TEMPLATE,
    "mistral": _MISTRAL_TEMPLATE,
    "gemma2": _GEMMA2_TEMPLATE,
}

# The special token of each role. Gemma-2-it keeps <eos> as the tokenizer's eos and stops on <end_of_turn> via
# the generation config.
_ROLES = {
    "llama": dict(
        bos="<|begin_of_text|>",
        eos_base="<|end_of_text|>",
        eos_chat="<|eot_id|>",
        end_of_turn="<|eot_id|>",
        pad="<|finetune_right_pad_id|>",
    ),
    "qwen2": dict(
        bos=None, eos_base="<|endoftext|>", eos_chat="<|im_end|>", end_of_turn="<|im_end|>", pad="<|endoftext|>"
    ),
    "mistral": dict(bos="<s>", eos_base="</s>", eos_chat="</s>", end_of_turn="</s>", pad="<pad>"),
    "gemma2": dict(bos="<bos>", eos_base="<eos>", eos_chat="<eos>", end_of_turn="<end_of_turn>", pad="<pad>"),
}

_FAMILIES = {
    name: _Family(specials=_SPECIALS[name], chat_template=_CHAT_TEMPLATES[name], **roles)
    for name, roles in _ROLES.items()
}


def _family(architecture: str) -> _Family:
    if architecture not in _FAMILIES:
        raise XmrcError(f"unknown tiny-model architecture {architecture!r}; expected one of {ARCHITECTURES}")
    return _FAMILIES[architecture]


def train_tokenizer(texts: Iterable[str], vocab_size: int = 2048, *, architecture: str = "llama"):
    """A byte-level BPE tokenizer trained on ``texts`` with ``architecture``'s special tokens.

    Byte-level, so any script (Thai, Devanagari, Han...) encodes and decodes back unchanged.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    fam = _family(architecture)
    tok = Tokenizer(models.BPE())
    # No normalizer: NFC/NFKC would change the text and break the exact round trip.
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(fam.specials),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator((t for t in texts if t), trainer=trainer)
    # trim_offsets=False keeps character offsets exact (answer spans); BOS is added by the
    # post-processor, as in the Llama-3 tokenizer.json, not by the Python side.
    steps = [processors.ByteLevel(trim_offsets=False)]
    if fam.bos is not None:
        bos_id = tok.token_to_id(fam.bos)
        steps.append(
            processors.TemplateProcessing(
                single=f"{fam.bos} $A",
                pair=f"{fam.bos} $A {fam.bos} $B",
                special_tokens=[(fam.bos, bos_id)],
            )
        )
    tok.post_processor = processors.Sequence(steps)

    named = {fam.bos, fam.eos_base, fam.pad}
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=fam.bos,
        eos_token=fam.eos_base,
        pad_token=fam.pad,
        additional_special_tokens=[s for s in fam.specials if s not in named],
        padding_side="left",  # decoder-only batched generation
        model_max_length=MODEL_MAX_LENGTH,
        model_input_names=["input_ids", "attention_mask"],  # no token_type_ids: generate() rejects them
        clean_up_tokenization_spaces=False,  # would alter text around punctuation
    )


def build_tiny_model(
    architecture: str, chat: bool, texts: Iterable[str], out_dir, seed: int = 0, vocab_size: int = 2048
) -> Path:
    """Train a tokenizer on ``texts``, initialise a tiny ``architecture`` model with ``seed``, save both.

    Returns ``out_dir``, which then loads with ``AutoTokenizer`` / ``AutoModelForCausalLM``.
    """
    import torch
    import transformers
    from transformers import (
        AutoModelForCausalLM,
        Gemma2Config,
        GenerationConfig,
        LlamaConfig,
        MistralConfig,
        Qwen2Config,
    )

    start = time.perf_counter()
    fam = _family(architecture)
    texts = [t for t in texts if t]
    if not texts:
        raise XmrcError("no text to train the tiny tokenizer on")
    tokenizer = train_tokenizer(texts, vocab_size, architecture=architecture)
    ids = tokenizer.convert_tokens_to_ids
    bos_id = ids(fam.bos) if fam.bos is not None else None
    pad_id = ids(fam.pad)
    if chat:
        tokenizer.eos_token = fam.eos_chat
        tokenizer.chat_template = fam.chat_template
        # End of turn first, then the plain eos, as in the published generation configs.
        eos_ids = list(dict.fromkeys([ids(fam.end_of_turn), ids(fam.eos_chat), ids(fam.eos_base)]))
        eos = eos_ids if len(eos_ids) > 1 else eos_ids[0]
    else:
        eos = ids(fam.eos_base)

    config_class = {"llama": LlamaConfig, "qwen2": Qwen2Config, "mistral": MistralConfig, "gemma2": Gemma2Config}[
        architecture
    ]
    extra = {}
    if architecture == "gemma2":
        # query_pre_attn_scalar defaults to the 9B head size (256); it must follow our head_dim.
        # eager is what Gemma-2 needs for its attention soft-capping; note that transformers does not
        # persist attn_implementation in config.json, so loaders must pass it again.
        extra = dict(query_pre_attn_scalar=_SIZES["head_dim"], attn_implementation="eager")
    config = config_class(
        vocab_size=len(tokenizer), bos_token_id=bos_id, eos_token_id=eos, pad_token_id=pad_id, **_SIZES, **extra
    )

    # fork_rng: seed the initialisation without leaving the caller's global RNG changed.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.generation_config = GenerationConfig(bos_token_id=bos_id, eos_token_id=eos, pad_token_id=pad_id)

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    n_params = sum(p.numel() for p in model.parameters())
    provenance = {
        "architecture": architecture,
        "chat": bool(chat),
        "seed": seed,
        "vocab_size_requested": vocab_size,
        "vocab_size": len(tokenizer),
        "corpus_texts": len(texts),
        "corpus_chars": sum(map(len, texts)),
        "parameters": n_params,
        "transformers_version": transformers.__version__,
        "build_seconds": round(time.perf_counter() - start, 3),
    }
    (out / "xmrc_tiny.json").write_text(json.dumps(provenance, indent=2) + "\n", encoding="utf-8")
    return out


def build_from_spec(spec: dict, texts: Iterable[str], out_dir) -> Path:
    """Build the tiny model a registry entry describes: ``{"architecture": ..., "chat": ..., "seed": ...}``.

    Other keys of the registry entry are ignored; ``vocab_size`` is optional.
    """
    if "architecture" not in spec:
        raise XmrcError(f"tiny-model spec {spec!r} has no 'architecture'")
    return build_tiny_model(
        spec["architecture"],
        bool(spec.get("chat", False)),
        texts,
        out_dir,
        seed=int(spec.get("seed", 0)),
        vocab_size=int(spec.get("vocab_size", 2048)),
    )


def build_registry_model(model, table: pd.DataFrame, out_dir) -> dict:
    """The tiny model of a registry entry (xmrc.config.Model, source: tiny), its tokenizer trained on the
    contexts and questions of a data table; returns the spec it was built from."""
    if model.source != "tiny":
        raise XmrcError(f"model '{model.key}' is not a tiny model (source: {model.source})")
    spec = dict(model.tiny, chat=model.mode == "chat")
    build_from_spec(spec, list(pd.unique(table["context"])) + table["question"].tolist(), Path(out_dir))
    return spec
