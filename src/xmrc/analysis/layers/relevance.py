"""Layer-wise AttnLRP relevance (LXT 2.1, efficient mode) and the per-part MRD of every prompt.

Recipe (LXT's efficient mode): patch the model's modules with AttnLRP rules, feed `inputs_embeds`, keep the
gradient of every decoder layer's output hidden state, back-propagate the logit of the first answer token,
and take relevance = hidden x gradient summed over the features. Under the rules, gradient x input *is* the
LRP relevance; without them it is plain gradient x input (kept here as `lrp=False` for comparison). The
workflow runs AttnLRP; LXT's CP-LRP variant (no relevance through the attention scores, `variant="cp-lrp"`)
is kept for the controls of `xmrc.analysis.layers.mrd_control`.

The explained token is the first token of the model's extracted answer, for every model: the input is the
prompt followed by the tokens the model generated before its answer (teacher-forced: "Answer:" for a chat
model that writes the label, nothing for a base model whose prompt ends with it), and the logit explained is
that of the answer's first token at the last position (`xmrc.analysis.layers.answer_start`). An item whose answer
is empty (or whose output cannot be re-tokenised to its text) is not explained: its rows say so in
`target_status` and carry no MRD.

Layers: row 0 of a relevance matrix is the input embedding; row i (1..N, N = layers - 1) the output of
decoder layer i. The output of the last layer is what is explained, so it has no row (the paper: "N is one
less than the total layer number"). MRD uses rows 1..N of |relevance| / |logit|.

The patches change classes of the transformers modeling module process-wide; `attnlrp_rules` undoes
them on exit, so other code in the same process (hidden-state extraction, generation) is unaffected.

Output table (`relevance/<model>/<shots>shot-<format>.parquet`), one row per (direction, item, part):
  model (registry key), shots, prompt_format, context_lang, question_lang, id, part
  n_tokens        tokens of the part
  mrd             largest MRD of the part's tokens, 1..N (NaN: part absent or item not explained)
  layers          N
  target_status   answer (explained) | empty_answer | unaligned (see `xmrc.analysis.layers.answer_start`)
  target_id       token id explained: the answer's first token (-1: not explained)
  target_token    its text
  forced_prefix   text of the generated tokens teacher-forced before it ("" for a base model)
  forced_tokens   how many tokens that is: the explained token's position in the generated output
  target_greedy   the explained token is also the model's greedy choice there (false: the stored output
                  came from another backend or precision)
  relevance       list of N floats: the part's summed |relevance| / |logit| per layer ([] if not explained)
  target_logit    the explained logit (NaN if not explained)
  relevance_sum   list of N + 1 floats: the signed relevance summed over every input token at depths 0..N
                  (0: embeddings); AttnLRP conserves relevance when each equals target_logit
                  (`xmrc.analysis.layers.conservation`; the same for the four rows of an item)

Per-token relevance of a few example items (`relevance/<model>/<shots>shot-<format>.tokens.parquet`, for
the attribution example figure), one row per input token of every direction of those items:
  model, shots, prompt_format, context_lang, question_lang, id, position (index in the input), token_id,
  token (text), part (task_description | demonstrations | context | question | "" for none: template,
  special and forced tokens), target_token, mrd (the token's MRD, 1..N), total (sum over layers 1..N of
  |relevance| / |logit|), relevance (list of N floats per layer)
"""

from __future__ import annotations

import contextlib
import importlib
import sys
import types
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from xmrc.analysis.layers.answer_start import AnswerStart
from xmrc.analysis.layers.conservation import relevance_sums
from xmrc.analysis.layers.inputs import (
    ITEM_KEY,
    EncodedPrompt,
    ExtractionJob,
    decoder_layers,
    encode_to_answer,
    layer_outputs,
    left_pad,
)
from xmrc.analysis.layers.mrd import major_relevance_depths
from xmrc.backends.base import longest_first_batches
from xmrc.exceptions import XmrcError, check_choice
from xmrc.io import write_parquet
from xmrc.jobs import ParquetStore, StoreGroup
from xmrc.prompts import PARTS

KEY_COLUMNS = ["model", "shots", "prompt_format", "context_lang", "question_lang", "id"]
RELEVANCE_COLUMNS = KEY_COLUMNS + [
    "part",
    "n_tokens",
    "mrd",
    "layers",
    "target_status",
    "target_id",
    "target_token",
    "forced_prefix",
    "forced_tokens",
    "target_greedy",
    "relevance",
    "target_logit",
    "relevance_sum",
]
TOKEN_COLUMNS = KEY_COLUMNS + ["position", "token_id", "token", "part", "target_token", "mrd", "total", "relevance"]


def _modeling_module(model):
    return sys.modules[type(model).__module__]


# LXT's rule sets: AttnLRP (the paper's), and CP-LRP, which passes no relevance through the attention scores
# (query and key) and so conserves relevance exactly in a model without biases.
VARIANTS = ("attnlrp", "cp-lrp")


def lxt_rules(model, variant: str = "attnlrp") -> dict:
    """LXT 2.1's patch map (AttnLRP or CP-LRP) for this model's architecture, or a one-line error naming it."""
    check_choice("relevance variant", variant, VARIANTS)
    rules = _rules_for(_modeling_module(model), type(model).__name__)
    if variant == "attnlrp":
        return rules
    module = _modeling_module(model).__name__.rsplit(".", 1)[-1].removeprefix("modeling_")
    return importlib.import_module(f"lxt.efficient.models.{module}").cp_LRP


def check_lxt_support(weights: str, revision: str | None = None) -> None:
    """Fail before loading any weights when the checkpoint's architecture has no LXT rules."""

    from transformers import AutoConfig

    try:
        config = AutoConfig.from_pretrained(weights, revision=revision)
        module = _config_module(config)
    except (OSError, ValueError, ImportError, AttributeError):
        return  # unreadable here: loading the model reports it, and lxt_rules checks again
    _rules_for(module, config.model_type)


def _config_module(config):
    """The modeling module of the checkpoint's architecture class: Gemma 3's text model (`gemma3_text`) lives in
    `modeling_gemma3`, so the model type alone does not name it."""
    import transformers

    if config.architectures:
        return sys.modules[getattr(transformers, config.architectures[0]).__module__]
    return importlib.import_module(f"transformers.models.{config.model_type}.modeling_{config.model_type}")


def _rules_for(module, name: str) -> dict:
    from lxt.efficient.models import DEFAULT_MAP

    if module not in DEFAULT_MAP:
        supported = ", ".join(
            sorted(
                m.__name__.rsplit(".", 1)[-1].removeprefix("modeling_")
                for m in DEFAULT_MAP
                if m.__name__.startswith("transformers.")
            )
        )
        raise XmrcError(
            f"{name} ({module.__name__}): LXT 2.1 has no AttnLRP rules for this architecture (supported: {supported})"
        )
    return DEFAULT_MAP[module]


@contextlib.contextmanager
def attnlrp_rules(model, variant: str = "attnlrp"):
    """Apply LXT's AttnLRP (or CP-LRP) patches for the model's architecture; restore every patched attribute on
    exit."""
    from lxt.efficient import monkey_patch

    rules = lxt_rules(model, variant)
    saved = {target: dict(vars(target)) for target in rules}
    try:
        for target in rules:
            # CP-LRP wraps the entries of ALL_ATTENTION_FUNCTIONS in place, and that mapping is shared by every
            # modeling module: patch a private copy, which the restore below drops.
            if isinstance(target, types.ModuleType) and hasattr(target, "ALL_ATTENTION_FUNCTIONS"):
                target.ALL_ATTENTION_FUNCTIONS = dict(target.ALL_ATTENTION_FUNCTIONS.items())
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
    target_id: int  # the token whose logit is explained
    target_logit: float
    greedy_id: int  # the model's own choice at that position


def layer_relevance(
    model,
    batch: list[EncodedPrompt],
    pad_id: int,
    lrp: bool = True,
    targets: list[int] | None = None,
    variant: str = "attnlrp",
) -> list[LayerRelevance]:
    """Relevance of every token at every depth for the logit of `targets[b]` at the last position of prompt b
    (default: the greedy next token); one backward per batch (prompts in a batch do not interact, so the
    summed logits give each prompt its own gradients). `lrp=False`: plain gradient x input."""
    import torch

    ids, mask = left_pad(batch, pad_id)
    device = model.get_input_embeddings().weight.device
    ids, mask = ids.to(device), mask.to(device)
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    rules = attnlrp_rules(model, variant) if lrp else contextlib.nullcontext()
    with rules, torch.enable_grad():
        embeddings = model.get_input_embeddings()(ids).detach().requires_grad_(True)
        with layer_outputs(model, keep_grad=True) as hidden:
            logits = model(
                inputs_embeds=embeddings, attention_mask=mask, position_ids=positions, use_cache=False, logits_to_keep=1
            ).logits[:, -1, :]
        greedy_id = logits.argmax(dim=-1)
        target_id = greedy_id if targets is None else torch.tensor(targets, device=logits.device)
        target_logit = logits.gather(1, target_id[:, None])[:, 0]
        target_logit.sum().backward()
        # The last layer's output is the explained quantity, not an explaining representation.
        states = [embeddings] + list(hidden[:-1])
        stacked = torch.stack([(h * h.grad).float().sum(-1).detach().to("cpu") for h in states])  # (L, B, T)
    width = ids.shape[1]
    target_logit = target_logit.detach().float().to("cpu")
    return [
        LayerRelevance(
            stacked[:, row, width - len(item.input_ids) :].numpy(),
            int(target_id[row]),
            float(target_logit[row]),
            int(greedy_id[row]),
        )
        for row, item in enumerate(batch)
    ]


# protocol.mrd_relevance: how relevance is normalised before MRD. "logit": |r| / |logit explained| (one scale
# per prompt, so a token's MRD is that of |r| itself); "layer": |r| / the sum of |r| over the prompt's tokens
# at that layer, so each layer weighs the same and a token's MRD follows its share of each layer. The paper's
# "normalized relevance" says neither.
NORMALIZATIONS = ("logit", "layer")


def normalised_relevance(result: LayerRelevance, normalization: str = "logit") -> np.ndarray:
    """Rows 1..N of the normalised |relevance|: (N layers, tokens)."""
    check_choice("protocol.mrd_relevance", normalization, NORMALIZATIONS)
    relevance = np.abs(result.relevance[1:])
    if normalization == "layer":
        return relevance / np.maximum(relevance.sum(axis=1, keepdims=True), 1e-12)
    return relevance / max(abs(result.target_logit), 1e-12)


def part_records(result: LayerRelevance, prompt: EncodedPrompt, normalization: str = "logit") -> list[dict]:
    """MRD and per-layer relevance profile of every prompt part."""
    relevance = normalised_relevance(result, normalization)
    layers = relevance.shape[0]
    depths = major_relevance_depths(relevance) if layers else np.zeros(relevance.shape[1], dtype=int)
    records = []
    for part in PARTS:
        mask = prompt.parts[part]
        present = bool(mask.any()) and layers > 0
        records.append(
            dict(
                part=part,
                n_tokens=int(mask.sum()),
                mrd=float(depths[mask].max()) if present else np.nan,
                layers=layers,
                relevance=relevance[:, mask].sum(axis=1).astype(np.float32).tolist(),
                target_logit=result.target_logit,
                relevance_sum=relevance_sums(result).tolist(),
            )
        )
    return records


def unexplained_records(prompt: EncodedPrompt, layers: int) -> list[dict]:
    """The part rows of an item whose answer has no first token: sizes only."""
    return [
        dict(
            part=part,
            n_tokens=int(prompt.parts[part].sum()),
            mrd=np.nan,
            layers=layers,
            relevance=[],
            target_logit=np.nan,
            relevance_sum=[],
        )
        for part in PARTS
    ]


def token_records(result: LayerRelevance, prompt: EncodedPrompt, tokenizer, normalization: str = "logit") -> list[dict]:
    """One row per input token: its part, MRD, total and per-layer relevance (the example figure's data)."""
    relevance = normalised_relevance(result, normalization)
    depths = major_relevance_depths(relevance) if relevance.shape[0] else np.zeros(relevance.shape[1], dtype=int)
    part_of = np.full(len(prompt.input_ids), "", dtype=object)
    for part in PARTS:
        part_of[prompt.parts[part]] = part
    return [
        dict(
            position=position,
            token_id=int(token),
            token=tokenizer.decode([token]),
            part=part_of[position],
            mrd=int(depths[position]),
            total=float(relevance[:, position].sum()),
            relevance=relevance[:, position].astype(np.float32).tolist(),
        )
        for position, token in enumerate(prompt.input_ids)
    ]


def _target_fields(start: AnswerStart, result: LayerRelevance | None) -> dict:
    return dict(
        target_status=start.status,
        target_id=start.target_id,
        target_token=start.target_text,
        forced_prefix=start.prefix_text,
        forced_tokens=len(start.prefix_ids),
        target_greedy=result is not None and result.greedy_id == result.target_id,
    )


def example_ids(rows: pd.DataFrame, count: int) -> list[str]:
    """The first `count` items of the job (the order of the sample groups: balanced first)."""
    return list(dict.fromkeys(rows["id"]))[:count]


def run_relevance(
    rows: pd.DataFrame,
    model,
    tokenizer,
    output: Path,
    job: ExtractionJob,
    *,
    examples: int = 0,
    tokens_output: Path | None = None,
) -> pd.DataFrame:
    """Relevance records of every prompt row (with its model's `raw_output`), checkpointed every
    `job.chunk_size` prompts. The per-token relevance of every direction of the first `examples` items goes
    to `tokens_output`."""
    output = Path(output)
    lxt_rules(model)  # unsupported architectures fail before any work
    kept = set(example_ids(rows, examples))
    key = job.key()

    def relevance_chunk(chunk: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
        parts, tokens = _relevance_chunk(chunk, model, tokenizer, job, kept)
        return _keyed(parts, key, RELEVANCE_COLUMNS), _keyed(tokens, key, TOKEN_COLUMNS)

    def write_output(shards: list[tuple[pd.DataFrame, pd.DataFrame]]) -> pd.DataFrame:
        result = (
            pd.concat([p for p, _ in shards], ignore_index=True) if shards else pd.DataFrame(columns=RELEVANCE_COLUMNS)
        )
        write_parquet(result, output)
        if tokens_output is not None:
            tokens = (
                pd.concat([t for _, t in shards], ignore_index=True) if shards else pd.DataFrame(columns=TOKEN_COLUMNS)
            )
            write_parquet(tokens, Path(tokens_output))
        return result

    store = StoreGroup(
        (
            ParquetStore(RELEVANCE_COLUMNS, key_columns=ITEM_KEY, rows_per_item=len(PARTS)),
            ParquetStore(TOKEN_COLUMNS, rows_per_item=None, name="tokens"),
        )
    )
    return job.run(
        "relevance",
        rows,
        rows,
        relevance_chunk,
        store,
        output,
        write_output,
        examples=sorted(kept),
        normalization=job.normalization,
        columns="conservation",  # shards written before the conservation columns are not this job's
    )


def _keyed(records: list[dict], key: dict, columns: list[str]) -> pd.DataFrame:
    return pd.DataFrame([dict(key, **record) for record in records], columns=columns)


def _relevance_chunk(
    chunk: pd.DataFrame, model, tokenizer, job: ExtractionJob, kept: set
) -> tuple[list[dict], list[dict]]:
    """(part records, token records of the kept items) of one chunk of prompt rows."""
    batch_size, normalization = job.batch_size, job.normalization
    inputs = [encode_to_answer(tokenizer, row, job.extraction) for _, row in chunk.iterrows()]
    layers = len(decoder_layers(model)) - 1
    explained = [i for i, (_, start) in enumerate(inputs) if start.explained]
    results: dict[int, LayerRelevance] = {}
    for batch in longest_first_batches([len(inputs[i][0].input_ids) for i in explained], batch_size):
        batch = [explained[i] for i in batch]
        found = layer_relevance(
            model,
            [inputs[i][0] for i in batch],
            tokenizer.pad_token_id,
            targets=[inputs[i][1].target_id for i in batch],
        )
        results.update(zip(batch, found))
    parts, tokens = [], []
    for index, (prompt, start) in enumerate(inputs):
        row, result = chunk.iloc[index], results.get(index)
        item = dict(context_lang=row["context_lang"], question_lang=row["question_lang"], id=row["id"])
        target = _target_fields(start, result)
        records = (
            part_records(result, prompt, normalization) if result is not None else unexplained_records(prompt, layers)
        )
        parts.extend(dict(item, **target, **record) for record in records)
        if result is not None and row["id"] in kept:
            tokens.extend(
                dict(item, target_token=start.target_text, **record)
                for record in token_records(result, prompt, tokenizer, normalization)
            )
    return parts, tokens
