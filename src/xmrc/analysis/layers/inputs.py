"""What both layer-wise extractions (relevance, hidden states) share: loading a model for analysis,
tokenizing prompts with the prompt parts mapped to tokens, padding, and hooks on the decoder layers.

Inputs end where the answer starts: the prompt, then the tokens the model generated before its answer
(teacher-forced; `xmrc.analysis.layers.answer_start`), so the last input token is the one predicting the answer's
first token for base and chat models alike. The forced tokens belong to no part.

Parts: a token belongs to a part when its character span overlaps the part's span in the prompt table
(`{part}_start`, `{part}_end`; -1 when the part is absent). Special tokens (empty spans) belong to none.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from xmrc.analysis.layers.answer_start import AnswerStart, answer_start
from xmrc.exceptions import XmrcError
from xmrc.io import require_columns
from xmrc.jobs import Checkpoint, ShardStore, digest, run_sharded, table_keys
from xmrc.prompts import PARTS

# Bump when a change alters what the layer-wise extractions compute (inputs, explained token, outputs): the
# workflow passes it as a param of the relevance and hidden-state rules and it enters their shard
# fingerprints, so stale outputs and shards are never reused. 2: inputs end where the answer starts.
LAYER_CODE_VERSION = 2
ITEM_KEY = ["context_lang", "question_lang", "id"]
GENERATION_INPUT_COLUMNS = ["id", "context_lang", "question_lang", "raw_output"]

PROMPT_INPUT_COLUMNS = ["id", "context_lang", "question_lang", "prompt", "templated"] + [
    f"{part}_{edge}" for part in PARTS for edge in ("start", "end")
]


@dataclass(frozen=True)
class ExtractionJob:
    """One extraction (relevance or hidden states) of a model's prompt rows in one setting: the key of its
    rows, its batch and checkpoint sizes, and `settings` (the command's arguments), which enter the job's
    fingerprint with the rest (`xmrc.jobs`)."""

    model_key: str
    shots: int
    prompt_format: str
    batch_size: int
    chunk_size: int = 64
    settings: dict | None = None
    progress: bool = True
    extraction: str = "first_line"  # protocol.extraction: where the stored output's answer starts
    normalization: str = "logit"  # protocol.mrd_relevance (relevance jobs)

    def key(self) -> dict:
        """The columns that name the job's rows in its tables."""
        return {"model": self.model_key, "shots": self.shots, "prompt_format": self.prompt_format}

    def fingerprint_settings(self, rows: pd.DataFrame, kind_settings: dict) -> dict:
        """What the job's fingerprint is made of besides the rows' item keys: `kind_settings`, those of one
        kind of extraction, yield to `settings` (the command's arguments, as given)."""
        return {
            **self.key(),
            "batch_size": self.batch_size,
            "chunk_size": self.chunk_size,
            "extraction": self.extraction,
            **kind_settings,
            "code": LAYER_CODE_VERSION,
            **(self.settings or {}),
            "rows": digest(*row_keys(rows)),
        }

    def run(
        self,
        kind: str,
        rows: pd.DataFrame,
        items: Sequence | pd.DataFrame,
        compute: Callable,
        store: ShardStore,
        output: Path,
        write_output: Callable[[list], object],
        **kind_settings,
    ):
        """`xmrc.jobs.run_sharded` over `items` (the rows, or their positions) of the job of `kind` (its progress
        label), its shards named by the rows' item keys."""
        settings = self.fingerprint_settings(rows, kind_settings)
        checkpoint = Checkpoint(output, settings, self.chunk_size, f"{kind} {self.model_key}", "prompt", self.progress)
        return run_sharded(items, table_keys(rows, ITEM_KEY), compute, store, write_output, checkpoint)


@dataclass
class EncodedPrompt:
    input_ids: list[int]
    parts: dict[str, np.ndarray]  # part -> boolean mask over the tokens


def load_model(
    weights: str, revision: str | None = None, dtype: str = "bfloat16", gpus: int = 1, device: str | None = None
):
    """(model, tokenizer) in eval mode with frozen weights: gradients flow to activations only.

    More than one GPU: the layers are sharded over them (`device_map="auto"`), as for generation.
    """
    from xmrc.backends.hf import load_causal_lm, load_tokenizer

    tokenizer = load_tokenizer(weights, revision)
    model = load_causal_lm(weights, revision, dtype, device, gpus)
    model.requires_grad_(False)
    return model, tokenizer


def encode(tokenizer, row) -> EncodedPrompt:
    """Token ids of one prompt-table row (special tokens as generation adds them) and its part masks."""
    encoded = tokenizer(row["prompt"], add_special_tokens=not bool(row["templated"]), return_offsets_mapping=True)
    offsets = np.asarray(encoded["offset_mapping"], dtype=np.int64).reshape(-1, 2)
    starts, ends = offsets[:, 0], offsets[:, 1]
    parts = {}
    for part in PARTS:
        start, end = int(row[f"{part}_start"]), int(row[f"{part}_end"])
        if start < 0 or end <= start:
            parts[part] = np.zeros(len(starts), dtype=bool)
        else:
            parts[part] = (ends > starts) & (starts < end) & (ends > start)
    return EncodedPrompt(list(encoded["input_ids"]), parts)


def encode_to_answer(tokenizer, row, extraction: str = "first_line") -> tuple[EncodedPrompt, AnswerStart]:
    """The prompt of a row with the model's forced prefix appended (see the module docstring), and where its
    answer starts; a row whose answer has no first token keeps the bare prompt."""
    prompt = encode(tokenizer, row)
    start = answer_start(tokenizer, row["raw_output"], extraction)
    extra = len(start.prefix_ids)
    parts = {part: np.concatenate([mask, np.zeros(extra, dtype=bool)]) for part, mask in prompt.parts.items()}
    return EncodedPrompt(prompt.input_ids + list(start.prefix_ids), parts), start


def row_keys(rows: pd.DataFrame) -> list[str]:
    """Every value of each prompt row (id, directions, prompt text, part spans, ...), for shard fingerprints."""
    columns = sorted(rows.columns)
    return ["\t".join(map(str, values)) for values in rows[columns].itertuples(index=False)]


def left_pad(batch: list[EncodedPrompt], pad_id: int):
    """(input_ids, attention_mask) tensors, left-padded so every prompt ends at the last position."""
    import torch

    width = max(len(item.input_ids) for item in batch)
    ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    for row, item in enumerate(batch):
        ids[row, width - len(item.input_ids) :] = torch.tensor(item.input_ids)
        mask[row, width - len(item.input_ids) :] = 1
    return ids, mask


def decoder_layers(model):
    """The model's list of decoder blocks (Llama, Qwen2, Mistral, Gemma-2 all keep them in `.layers`)."""
    layers = getattr(model.get_decoder(), "layers", None)
    if layers is None:
        raise XmrcError(f"{type(model).__name__}: no decoder layer list found (expected model.model.layers)")
    return layers


@contextlib.contextmanager
def layer_outputs(model, keep_grad: bool = False):
    """Collect the output hidden state of every decoder layer during a forward pass (list, in depth order).

    With `keep_grad`, each output retains its gradient, so relevance = output x gradient after backward.
    """
    outputs: list = []

    def hook(module, args, output):
        hidden = output[0] if isinstance(output, tuple) else output
        if keep_grad and hidden.requires_grad:
            hidden.retain_grad()
        outputs.append(hidden)

    handles = [layer.register_forward_hook(hook) for layer in decoder_layers(model)]
    try:
        yield outputs
    finally:
        for handle in handles:
            handle.remove()


def prompt_rows(
    prompts: pd.DataFrame,
    ids: list[str],
    languages: list[str],
    path: str,
    generations: pd.DataFrame | None = None,
    generations_path: str = "",
) -> pd.DataFrame:
    """The en-x rows of a prompt table for the given items and question languages, in a stable order; with
    `generations` (the model's generation table of the same setting), each row carries its `raw_output`."""
    require_columns(prompts, PROMPT_INPUT_COLUMNS, path)
    wanted = set(ids)
    rows = prompts[
        (prompts["context_lang"] == "en") & prompts["question_lang"].isin(languages) & prompts["id"].isin(wanted)
    ]
    absent = sorted(wanted - set(rows["id"]))
    if absent:
        raise XmrcError(
            f"{path}: no en-x prompts for item(s) {', '.join(absent[:5])}"
            + (f" and {len(absent) - 5} more" if len(absent) > 5 else "")
        )
    rows = rows.reset_index(drop=True)
    return rows if generations is None else _with_outputs(rows, generations, generations_path)


def _with_outputs(rows: pd.DataFrame, generations: pd.DataFrame, path: str) -> pd.DataFrame:
    require_columns(generations, GENERATION_INPUT_COLUMNS, path)
    keys = ["id", "context_lang", "question_lang"]
    outputs = generations[GENERATION_INPUT_COLUMNS].drop_duplicates(keys)
    joined = rows.drop(columns=["raw_output"], errors="ignore").merge(outputs, on=keys, how="left", indicator=True)
    lost = joined[joined["_merge"] != "both"]
    if not lost.empty:
        first = lost.iloc[0]
        raise XmrcError(
            f"{path}: no generation for {len(lost)} prompt(s), e.g. item {first['id']} "
            f"({first['context_lang']}-{first['question_lang']})"
        )
    return joined.drop(columns="_merge")


def group_ids(members: pd.DataFrame, model_key: str, shots: int, prompt_format: str, path: str) -> list[str]:
    """The ids of the sample groups (`members`, from layer-groups at `path`) of one model and setting, in order."""
    mine = members[
        (members["model"] == model_key) & (members["shots"] == shots) & (members["prompt_format"] == prompt_format)
    ]
    if mine.empty:
        raise XmrcError(f"{path}: no sample group rows for model '{model_key}', {shots}-shot {prompt_format}")
    return list(dict.fromkeys(mine["id"]))
