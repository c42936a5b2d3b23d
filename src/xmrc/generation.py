"""A generation job: every prompt of one (model, shots, format) through one backend, checkpointed in shards.

Order. Prompts run in prefix order (`xmrc.backends.prefix`): prompts sharing demonstrations and context are
neighbours, so prefix caches hit. The output is put back in the prompt table's order, so the table does not
depend on the order prompts ran in.

Resumption. The job checkpoints every `chunk_size` prompts in `<output>.shards/` (`xmrc.jobs`); its
fingerprint holds every prompt's key and text, the chunk layout, the model, setting and backend settings, and
a shard is reused only with its chunk's exact keys in order. A job killed at any point (SIGKILL, preemption)
and started again therefore loses no prompt, duplicates none, and writes the same table as an uninterrupted
run. The backend settings a retry changes to get more memory (its `retry` entry names them: vLLM's KV cache
and batch size, `xmrc.backends.vllm`) stay out of the fingerprint (`checkpoint_backend`), so a retry resumes
too; the output's metadata holds those of the attempt that finished. A vLLM engine core that dies mid-job
(`EngineDied`) ends it with one line: what happened, how many chunks are kept and where; a rerun resumes.

Output columns: model, shots, prompt_format, id, context_lang, question_lang, answer_lang, gold, raw_output,
prediction, prompt_tokens, output_tokens. Parquet metadata key `xmrc.generation` holds JSON with the xmrc
version, backend name, version and settings, the order and the shared-prefix shares of the job.

Served models. A backend whose generations name the model that served them (the API backend: each
response's `model`) has them kept per prompt in the shards (column `served_model`, not in the output), so a
resumed job counts every prompt; the metadata then holds `served_models` (each distinct name: its number
of prompts) and, for prompts whose response named no model (or whose shard was written before the column
existed), `served_models_unrecorded`. A served name that is not the requested model
(`xmrc.backends.api.served_model_matches`: a dated snapshot of it matches) is one warning line on stderr.
Local backends report none: their metadata has no `served_models`.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from functools import partial
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq

from xmrc import __version__
from xmrc.backends import Backend, describe_backend
from xmrc.backends.api import served_model_matches
from xmrc.backends.prefix import prefix_order, shared_prefix_share
from xmrc.backends.vllm import EngineDied
from xmrc.exceptions import XmrcError
from xmrc.extract import answer_complete, check_extraction, extract_answer
from xmrc.io import write_parquet
from xmrc.jobs import Checkpoint, ParquetStore, digest, run_sharded, shard_dir

GENERATION_COLUMNS = [
    "model",
    "shots",
    "prompt_format",
    "id",
    "context_lang",
    "question_lang",
    "answer_lang",
    "gold",
    "raw_output",
    "prediction",
    "prompt_tokens",
    "output_tokens",
]
PROMPT_KEY = ["id", "context_lang", "question_lang"]
# Shards only: the model that served each prompt, where the backend reports one (API); counted in the metadata.
SERVED_MODEL = "served_model"
METADATA_KEY = b"xmrc.generation"
# Bump when a change to generation code alters its outputs: the workflow passes it as a param of the
# generate rules, so every generation job (and only those and their consumers) re-runs.
CODE_VERSION = 3
# vLLM's paged KV cache reuses whole blocks of this many tokens.
CACHE_BLOCK = 16


def _keys(frame: pd.DataFrame) -> list[str]:
    return ["\t".join(map(str, row)) for row in frame[PROMPT_KEY].itertuples(index=False)]


def _check_prompts(prompts: pd.DataFrame) -> None:
    duplicated = prompts.duplicated(PROMPT_KEY)
    if duplicated.any():
        first = prompts.loc[duplicated, PROMPT_KEY].iloc[0].tolist()
        raise XmrcError(
            f"prompt table: {int(duplicated.sum())} duplicated prompt key(s) "
            f"(id, context_lang, question_lang), e.g. {first}"
        )


def prefix_shares(prompts: list[str], backend: Backend, templated: bool) -> dict:
    """Shared-prefix shares of `prompts` in the given order: characters, and tokens where the backend can
    tokenise (also counted in whole KV-cache blocks)."""
    shares = {"chars": round(shared_prefix_share(prompts), 4)}
    tokenize = getattr(backend, "tokenize", None)
    if tokenize is not None and prompts:
        tokens = tokenize(prompts, templated)
        shares["tokens"] = round(shared_prefix_share(tokens), 4)
        shares[f"tokens_{CACHE_BLOCK}_blocks"] = round(shared_prefix_share(tokens, CACHE_BLOCK), 4)
    return shares


def run_generation(
    prompts: pd.DataFrame,
    backend: Backend,
    output: Path,
    *,
    model: str,
    shots: int,
    prompt_format: str,
    max_new_tokens: int,
    chunk_size: int = 256,
    order: str = "prefix",
    progress: bool = True,
    extraction: str = "first_line",
) -> pd.DataFrame:
    output = Path(output)
    _check_prompts(prompts)
    check_extraction(extraction)
    table = prompts.reset_index(drop=True)
    positions = prefix_order(table["prompt"].tolist()) if order == "prefix" else list(range(len(table)))
    ordered = table.iloc[positions]
    backend_info = describe_backend(backend)
    settings = {
        "model": model,
        "shots": shots,
        "prompt_format": prompt_format,
        "max_new_tokens": max_new_tokens,
        "chunk_size": chunk_size,
        "order": order,
        "extraction": extraction,
        "backend": backend_info,
    }
    # the prompt texts enter the fingerprint: a changed prompt table never resumes from the old one's shards
    job = {**settings, "backend": checkpoint_backend(backend_info), "prompts": digest(*ordered["prompt"])}

    def generate_chunk(chunk: pd.DataFrame) -> pd.DataFrame:
        return _generate_chunk(
            chunk,
            backend,
            model=model,
            shots=shots,
            prompt_format=prompt_format,
            max_new_tokens=max_new_tokens,
            extraction=extraction,
        )

    def write_output(frames: list[pd.DataFrame]) -> pd.DataFrame:
        return _write_generations(frames, positions, table, output, backend, settings, ordered)

    checkpoint = Checkpoint(output, job, chunk_size, f"{model} {shots}-shot {prompt_format}", "prompt", progress)
    store = ParquetStore(GENERATION_COLUMNS, key_columns=PROMPT_KEY)
    try:
        return run_sharded(ordered, _keys(ordered), generate_chunk, store, write_output, checkpoint)
    except EngineDied as error:
        directory = shard_dir(output)
        kept, chunks = len(list(directory.glob("shard-*.parquet"))), -(-len(ordered) // chunk_size)
        raise XmrcError(f"{error}; {kept} of {chunks} chunks are kept in {directory}; rerun to resume") from None


def checkpoint_backend(info: dict) -> dict:
    """A backend's description as it enters a job's checkpoint fingerprint: less its `retry` entry and the engine
    settings that entry names (memory sizes a retry changes: the attempt, vLLM's KV cache and batch size), so a
    retry resumes from the shards of the attempts before it."""
    retry = info.get("retry")
    if not retry:
        return info
    scaled = set(retry.get("settings", ()))
    kept = {key: value for key, value in info.items() if key != "retry"}
    if isinstance(kept.get("engine"), dict):
        kept["engine"] = {key: value for key, value in kept["engine"].items() if key not in scaled}
    return kept


def _write_generations(
    frames: list[pd.DataFrame],
    positions: list[int],
    table: pd.DataFrame,
    output: Path,
    backend: Backend,
    settings: dict,
    ordered: pd.DataFrame,
) -> pd.DataFrame:
    result = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=GENERATION_COLUMNS)
    served = served_models(result[SERVED_MODEL]) if SERVED_MODEL in result else {}
    # back to the prompt table's order: the table does not depend on the order the prompts ran in
    result.index = positions
    result = result.sort_index().reset_index(drop=True)[GENERATION_COLUMNS]
    templated = bool(table["templated"].iloc[0]) if len(table) else False
    record = {
        "xmrc_version": __version__,
        **settings,
        "prompts": len(table),
        "prefix_share": {
            "prefix_order": prefix_shares(ordered["prompt"].tolist(), backend, templated),
            "table_order": prefix_shares(table["prompt"].tolist(), backend, templated),
        },
        **served,
    }
    write_parquet(result, output, {METADATA_KEY: json.dumps(record, sort_keys=True).encode()})
    _warn_served_models(output, settings["backend"].get("model"), served.get("served_models", {}))
    shares = record["prefix_share"]["prefix_order"]
    print(
        f"{output}: shared-prefix share in run order: "
        + ", ".join(f"{unit} {100 * value:.1f}%" for unit, value in shares.items()),
        file=sys.stderr,
    )
    return result


def served_models(column: pd.Series) -> dict:
    """The metadata of a job's served models: `served_models` (name: prompts, by name) and, where some
    prompts have none (a response without `model`, a shard written before the column existed),
    `served_models_unrecorded`."""
    names = [value for value in column if isinstance(value, str)]
    record = {"served_models": dict(sorted(Counter(names).items()))}
    if len(names) < len(column):
        record["served_models_unrecorded"] = len(column) - len(names)
    return record


def _warn_served_models(output: Path, requested: str | None, served: dict[str, int]) -> None:
    """One line on stderr when the provider served a model other than the requested one."""
    others = {name: count for name, count in served.items() if not served_model_matches(requested or "", name)}
    if requested and others:
        total = sum(served.values())
        print(
            f"xmrc: warning: {output}: requested model '{requested}' but the provider served "
            + ", ".join(f"'{name}' ({count} of {total} prompts)" for name, count in others.items()),
            file=sys.stderr,
        )


def _generate_chunk(
    chunk: pd.DataFrame,
    backend: Backend,
    *,
    model: str,
    shots: int,
    prompt_format: str,
    max_new_tokens: int,
    extraction: str = "first_line",
) -> pd.DataFrame:
    templated = bool(chunk["templated"].iloc[0]) if len(chunk) else False
    stop_when = partial(answer_complete, rule=extraction)
    generations = backend.generate(chunk["prompt"].tolist(), max_new_tokens, templated, stop_when=stop_when)
    if len(generations) != len(chunk):
        raise XmrcError(f"backend {backend.name}: {len(generations)} generations for {len(chunk)} prompts")
    frame = chunk[["id", "context_lang", "question_lang", "answer_lang", "gold"]].copy()
    frame.insert(0, "prompt_format", prompt_format)
    frame.insert(0, "shots", shots)
    frame.insert(0, "model", model)
    frame["raw_output"] = [g.text for g in generations]
    frame["prediction"] = [extract_answer(g.text, extraction) for g in generations]
    frame["prompt_tokens"] = [g.prompt_tokens for g in generations]
    frame["output_tokens"] = [g.output_tokens for g in generations]
    served = [getattr(g, "served_model", None) for g in generations]
    if any(name is not None for name in served):  # kept in the shard, counted in the output's metadata
        frame[SERVED_MODEL] = served
        return frame[[*GENERATION_COLUMNS, SERVED_MODEL]].reset_index(drop=True)
    return frame[GENERATION_COLUMNS].reset_index(drop=True)


def generation_record(path: Path) -> dict:
    """The `xmrc.generation` metadata of a generation table (backend, versions, settings, prefix shares)."""
    try:
        metadata = pq.read_schema(path).metadata or {}
    except FileNotFoundError:
        raise XmrcError(f"{path}: file not found") from None
    except Exception as error:
        raise XmrcError(f"{path}: not a readable Parquet table ({type(error).__name__})") from None
    if METADATA_KEY not in metadata:
        raise XmrcError(f"{path}: no xmrc.generation metadata (not a generation job's table)")
    return json.loads(metadata[METADATA_KEY])
