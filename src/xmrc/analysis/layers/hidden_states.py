"""Pooled hidden states per prompt part and layer, for the cross-lingual similarity ratio.

For every prompt, at every depth 0..L (0: the input embeddings; i: the output of decoder layer i, before the
final norm), three vectors are kept: the mean over the question's tokens, the mean over the context's
tokens, and the last input token, "predicting the start of the answer" (the paper). The input is the one the
relevance step explains (`xmrc.analysis.layers.inputs`): the prompt, then the tokens the model generated
before its answer, teacher-forced; so the last input token is the prompt's last token for a base model and
the end of the "Answer:" label for a chat model that writes it, the position whose next token is the
answer's first for both. Question and context vectors do not depend on the forced tokens (they come later
in a causal model). An item with an empty answer has no such position: its last-token vectors are NaN and
the similarity leaves it out of that part.

Pooling happens inside the forward hooks, so a batch never holds more than one layer's full hidden states;
only the pooled vectors leave the GPU, as float16.

Files (`hidden/<model>/<shots>shot-<format>.npy` and `.parquet`):
  .npy      float16 array (prompts, L + 1, 3, d); axis 2 in POOLED_PARTS order (question, context, last);
            NaN where a part has no tokens
  .parquet  one row per prompt, in array order: model (registry key), shots, prompt_format, context_lang,
            question_lang, id, target_status (answer | empty_answer | unaligned: `xmrc.analysis.layers.answer_start`),
            forced_prefix (text teacher-forced after the prompt), last_token (text of the last input token,
            "" where its vectors are NaN)
Budget: prompts x (L + 1) x 3 x d x 2 bytes, e.g. 70B (L = 80, d = 8192): 4.0 MB per prompt.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from xmrc.analysis.layers.inputs import (
    ITEM_KEY,
    EncodedPrompt,
    ExtractionJob,
    decoder_layers,
    encode_to_answer,
    left_pad,
)
from xmrc.backends.base import longest_first_batches
from xmrc.exceptions import XmrcError
from xmrc.io import write_array_blocks, write_parquet
from xmrc.jobs import ArrayStore

POOLED_PARTS = ("question", "context", "last")
INDEX_COLUMNS = ["model", "shots", "prompt_format", *ITEM_KEY, "target_status", "forced_prefix", "last_token"]


def pooled_hidden_states(
    model, batch: list[EncodedPrompt], pad_id: int, has_last: list[bool] | None = None
) -> np.ndarray:
    """float16 array (batch, L + 1, 3, d) of pooled hidden states (see the module docstring); the last-token
    vectors of prompts with `has_last[b]` False are NaN."""
    import torch

    ids, mask = left_pad(batch, pad_id)
    device = model.get_input_embeddings().weight.device
    ids, mask = ids.to(device), mask.to(device)
    width = ids.shape[1]
    weights = torch.zeros((len(batch), 2, width), dtype=torch.float32)
    for row, item in enumerate(batch):
        for slot, part in enumerate(POOLED_PARTS[:2]):
            part_mask = torch.as_tensor(item.parts[part], dtype=torch.float32)
            if part_mask.sum() > 0:
                weights[row, slot, width - len(item.input_ids) :] = part_mask / part_mask.sum()
            else:
                weights[row, slot, :] = float("nan")
    last_weight = torch.ones((len(batch), 1, 1))
    if has_last is not None:
        last_weight[~torch.tensor(has_last, dtype=torch.bool)] = float("nan")
    pooled: list[torch.Tensor] = []

    def pool(hidden):
        hidden = hidden.float()
        means = torch.einsum("bpt,btd->bpd", weights.to(hidden.device), hidden)
        last = hidden[:, -1:, :] * last_weight.to(hidden.device)
        pooled.append(torch.cat([means, last], dim=1).to("cpu", torch.float16))

    def hook(module, args, output):
        pool(output[0] if isinstance(output, tuple) else output)

    handles = [layer.register_forward_hook(hook) for layer in decoder_layers(model)]
    try:
        with torch.inference_mode():
            embeddings = model.get_input_embeddings()(ids)
            pool(embeddings)
            model.model(
                inputs_embeds=embeddings,
                attention_mask=mask,
                position_ids=(mask.cumsum(-1) - 1).clamp(min=0),
                use_cache=False,
            )
    finally:
        for handle in handles:
            handle.remove()
    return torch.stack(pooled, dim=1).numpy()


def run_hidden_states(
    rows: pd.DataFrame, model, tokenizer, vectors_out: Path, index_out: Path, job: ExtractionJob
) -> tuple[int, tuple[int, ...]]:
    """Pooled states of every prompt row, checkpointed every `job.chunk_size` prompts; returns (prompts, shape)."""
    vectors_out, index_out = Path(vectors_out), Path(index_out)
    if getattr(model, "model", None) is None:
        raise XmrcError(f"{type(model).__name__}: expected a causal LM with a `.model` decoder")
    inputs = [encode_to_answer(tokenizer, row, job.extraction) for _, row in rows.iterrows()]
    trailing = (len(decoder_layers(model)) + 1, len(POOLED_PARTS), model.get_input_embeddings().weight.shape[1])

    def pool_chunk(chunk: list[int]) -> np.ndarray:
        pooled: dict[int, np.ndarray] = {}
        for batch in longest_first_batches([len(inputs[i][0].input_ids) for i in chunk], job.batch_size):
            batch = [chunk[i] for i in batch]
            found = pooled_hidden_states(
                model, [inputs[i][0] for i in batch], tokenizer.pad_token_id, [inputs[i][1].explained for i in batch]
            )
            pooled.update(zip(batch, found))
        return np.stack([pooled[i] for i in chunk])

    def write_output(shards: list[np.ndarray]) -> tuple[int, ...]:
        shape = (len(rows), *trailing)
        write_array_blocks(shards, shape, np.float16, vectors_out)
        _write_index(rows, inputs, tokenizer, index_out, job.key())
        return shape

    store = ArrayStore(trailing, "float16")
    shape = job.run("hidden states", rows, list(range(len(rows))), pool_chunk, store, vectors_out, write_output)
    return len(rows), shape


def _write_index(rows: pd.DataFrame, inputs: list, tokenizer, index_out: Path, key: dict) -> None:
    index = rows[ITEM_KEY].assign(**key)
    index["target_status"] = [start.status for _, start in inputs]
    index["forced_prefix"] = [start.prefix_text for _, start in inputs]
    index["last_token"] = [
        tokenizer.decode(prompt.input_ids[-1:]) if start.explained else "" for prompt, start in inputs
    ]
    write_parquet(index[INDEX_COLUMNS], index_out)
