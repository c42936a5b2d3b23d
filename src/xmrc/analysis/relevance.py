"""Layer-wise AttnLRP relevance (LXT 2.1, efficient mode) and the per-part MRD of every prompt.

Recipe (LXT's efficient mode): patch the model's modules with AttnLRP rules, feed `inputs_embeds`, keep the
gradient of every decoder layer's output hidden state, back-propagate the logit of the first answer token
(the greedy next token at the last input position), and take relevance = hidden x gradient summed over
the features. Under the rules, gradient x input *is* the LRP relevance; without them it is plain
gradient x input (kept here as `lrp=False` for comparison).

Layers: row 0 of a relevance matrix is the input embedding; row i (1..N, N = layers - 1) the output of
decoder layer i. The output of the last layer is what is explained, so it has no row (the paper: "N is one
less than the total layer number"). MRD uses rows 1..N of |relevance| / |logit|.

The patches change classes of the transformers modeling module process-wide; `attnlrp_rules` undoes
them on exit, so other code in the same process (hidden-state extraction, generation) is unaffected.

Output table (`relevance/<model>/<shots>shot-<format>.parquet`), one row per (direction, item, part):
model (registry key), shots, prompt_format, context_lang, question_lang, id, part, n_tokens (tokens of the
part), mrd (largest MRD of the part's tokens, 1..N; NaN for an absent part), layers (N), target_token
(decoded first answer token), relevance (list of N floats: the part's summed |relevance| / |logit| per layer).
"""

from __future__ import annotations

import contextlib
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from xmrc.analysis.layer_inputs import (
    EncodedPrompt,
    encode,
    layer_outputs,
    left_pad,
    row_keys,
)
from xmrc.analysis.mrd import major_relevance_depths
from xmrc.exceptions import XmrcError
from xmrc.parquet import read_parquet, write_parquet_atomic
from xmrc.prompts import PARTS
from xmrc.shards import close_shard_dir, fingerprint, open_shard_dir

RELEVANCE_COLUMNS = ["model", "shots", "prompt_format", "context_lang", "question_lang", "id", "part", "n_tokens",
                     "mrd", "layers", "target_token", "relevance"]


def _modeling_module(model):
    return sys.modules[type(model).__module__]


def lxt_rules(model) -> dict:
    """LXT 2.1's AttnLRP patch map for this model's architecture, or a one-line error naming it."""
    return _rules_for(_modeling_module(model), type(model).__name__)


def check_lxt_support(weights: str, revision: str | None = None) -> None:
    """Fail before loading any weights when the checkpoint's architecture has no LXT rules."""
    import importlib

    from transformers import AutoConfig

    try:
        config = AutoConfig.from_pretrained(weights, revision=revision)
        module = importlib.import_module(f"transformers.models.{config.model_type}.modeling_{config.model_type}")
    except (OSError, ValueError, ImportError):
        return  # unreadable here: loading the model reports it, and lxt_rules checks again
    _rules_for(module, config.model_type)


def _rules_for(module, name: str) -> dict:
    from lxt.efficient.models import DEFAULT_MAP

    if module not in DEFAULT_MAP:
        supported = ", ".join(sorted(m.__name__.rsplit(".", 1)[-1].removeprefix("modeling_") for m in DEFAULT_MAP
                             if m.__name__.startswith("transformers.")))
        raise XmrcError(f"{name} ({module.__name__}): LXT 2.1 has no AttnLRP rules for this "
                        f"architecture (supported: {supported})")
    return DEFAULT_MAP[module]


@contextlib.contextmanager
def attnlrp_rules(model):
    """Apply LXT's AttnLRP patches for the model's architecture; restore every patched attribute on exit."""
    from lxt.efficient import monkey_patch

    rules = lxt_rules(model)
    saved = {target: dict(vars(target)) for target in rules}
    try:
        monkey_patch(_modeling_module(model), rules)
        yield
    finally:
        for target, attributes in saved.items():
            for name in set(vars(target)) - set(attributes):
                delattr(target, name)
            for name, value in attributes.items():
                if vars(target).get(name, value) is not value:
                    setattr(target, name, value)


@dataclass
class LayerRelevance:
    relevance: np.ndarray  # (layers, tokens), signed: row 0 embeddings, row i output of decoder layer i
    target_id: int
    target_logit: float


def layer_relevance(model, batch: list[EncodedPrompt], pad_id: int, lrp: bool = True) -> list[LayerRelevance]:
    """Relevance of every token at every depth for the first answer token's logit; one backward per batch
    (prompts in a batch do not interact, so the summed logits give each prompt its own gradients)."""
    import torch

    ids, mask = left_pad(batch, pad_id)
    device = model.get_input_embeddings().weight.device
    ids, mask = ids.to(device), mask.to(device)
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    rules = attnlrp_rules(model) if lrp else contextlib.nullcontext()
    with rules, torch.enable_grad():
        embeddings = model.get_input_embeddings()(ids).detach().requires_grad_(True)
        with layer_outputs(model, keep_grad=True) as hidden:
            logits = model(inputs_embeds=embeddings, attention_mask=mask, position_ids=positions,
                           use_cache=False, logits_to_keep=1).logits[:, -1, :]
        target_logit, target_id = logits.max(dim=-1)
        target_logit.sum().backward()
        # The last layer's output is the explained quantity, not an explaining representation.
        states = [embeddings] + list(hidden[:-1])
        stacked = torch.stack([(h * h.grad).float().sum(-1).detach().to("cpu") for h in states])  # (L, B, T)
    width = ids.shape[1]
    target_logit = target_logit.detach().float().to("cpu")
    return [LayerRelevance(stacked[:, row, width - len(item.input_ids):].numpy(), int(target_id[row]),
                           float(target_logit[row])) for row, item in enumerate(batch)]


def part_records(result: LayerRelevance, prompt: EncodedPrompt) -> list[dict]:
    """MRD and per-layer relevance profile of every prompt part (rows 1..N of |relevance| / |logit|)."""
    relevance = np.abs(result.relevance[1:]) / max(abs(result.target_logit), 1e-12)
    layers = relevance.shape[0]
    depths = major_relevance_depths(relevance) if layers else np.zeros(relevance.shape[1], dtype=int)
    records = []
    for part in PARTS:
        mask = prompt.parts[part]
        present = bool(mask.any()) and layers > 0
        records.append(dict(part=part, n_tokens=int(mask.sum()),
                            mrd=float(depths[mask].max()) if present else np.nan, layers=layers,
                            relevance=relevance[:, mask].sum(axis=1).astype(np.float32).tolist()))
    return records


def _shard_done(path: Path, rows: int) -> bool:
    import pyarrow.parquet as pq

    try:
        return pq.read_metadata(path).num_rows == rows
    except Exception:  # missing or truncated: recompute
        return False


def run_relevance(rows: pd.DataFrame, model, tokenizer, output: Path, *, model_key: str, shots: int,
                  prompt_format: str, batch_size: int = 1, chunk_size: int = 64, settings: dict | None = None,
                  progress: bool = True) -> pd.DataFrame:
    """Relevance records of every prompt row, checkpointed every `chunk_size` prompts (`xmrc.shards`;
    `settings`, the command's arguments, enter the job's fingerprint)."""
    output = Path(output)
    lxt_rules(model)  # unsupported architectures fail before any work
    job = {"model": model_key, "shots": shots, "prompt_format": prompt_format, "batch_size": batch_size,
           "chunk_size": chunk_size, **(settings or {})}
    shard_dir = open_shard_dir(output, fingerprint(job, row_keys(rows)), {"settings": job})
    frames = []
    chunks = [rows.iloc[i:i + chunk_size] for i in range(0, len(rows), chunk_size)]
    bar = tqdm(total=len(rows), desc=f"relevance {model_key}", unit="prompt", disable=not progress)
    for number, chunk in enumerate(chunks):
        shard = shard_dir / f"shard-{number:05d}.parquet"
        if not _shard_done(shard, len(chunk) * len(PARTS)):
            frames_of_chunk = _relevance_chunk(chunk, model, tokenizer, batch_size, bar)
            frame = pd.DataFrame(frames_of_chunk)
            frame.insert(0, "prompt_format", prompt_format)
            frame.insert(0, "shots", shots)
            frame.insert(0, "model", model_key)
            write_parquet_atomic(frame[RELEVANCE_COLUMNS], shard)
        else:
            bar.update(len(chunk))
        frames.append(read_parquet(shard))
    bar.close()
    result = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=RELEVANCE_COLUMNS)
    write_parquet_atomic(result, output)
    close_shard_dir(output)
    return result


def _relevance_chunk(chunk: pd.DataFrame, model, tokenizer, batch_size: int, bar) -> list[dict]:
    encoded = [encode(tokenizer, row) for _, row in chunk.iterrows()]
    order = sorted(range(len(encoded)), key=lambda i: -len(encoded[i].input_ids))  # similar lengths batch well
    records: list[list[dict]] = [[] for _ in encoded]
    for start in range(0, len(order), batch_size):
        batch = order[start:start + batch_size]
        results = layer_relevance(model, [encoded[i] for i in batch], tokenizer.pad_token_id)
        for index, result in zip(batch, results):
            row = chunk.iloc[index]
            token = tokenizer.decode([result.target_id])
            records[index] = [dict(context_lang=row["context_lang"], question_lang=row["question_lang"],
                                   id=row["id"], target_token=token, **record)
                              for record in part_records(result, encoded[index])]
        bar.update(len(batch))
    return [record for group in records for record in group]

