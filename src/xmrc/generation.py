"""A generation job: every prompt of one (model, shots, format) through one backend, checkpointed in shards.

Shards are written next to the output (`<output>.shards/shard-00000.parquet`, atomic renames) so a killed
job resumes at the first missing shard; the output is assembled only when every shard exists.

Output columns: the prompt table's id, context_lang, question_lang, answer_lang, gold, plus
model, shots, prompt_format, raw_output, prediction, prompt_tokens, output_tokens.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from tqdm.auto import tqdm

from xmrc.backends import Backend
from xmrc.extract import answer_complete, extract_answer

GENERATION_COLUMNS = ["model", "shots", "prompt_format", "id", "context_lang", "question_lang", "answer_lang",
                      "gold", "raw_output", "prediction", "prompt_tokens", "output_tokens"]


def write_parquet_atomic(frame: pd.DataFrame, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), partial)
    os.replace(partial, path)


def _readable(path: Path, rows: int) -> bool:
    try:
        return pq.read_metadata(path).num_rows == rows
    except Exception:  # truncated or foreign file: regenerate it
        return False


def run_generation(prompts: pd.DataFrame, backend: Backend, output: Path, *, model: str, shots: int,
                   prompt_format: str, max_new_tokens: int, chunk_size: int = 256, progress: bool = True) -> pd.DataFrame:
    output = Path(output)
    shard_dir = output.with_name(output.name + ".shards")
    chunks = [prompts.iloc[i:i + chunk_size] for i in range(0, len(prompts), chunk_size)]
    frames = []
    for number, chunk in enumerate(tqdm(chunks, desc=f"{model} {shots}-shot {prompt_format}", unit="shard",
                                        disable=not progress)):
        shard = shard_dir / f"shard-{number:05d}.parquet"
        if not _readable(shard, len(chunk)):
            templated = bool(chunk["templated"].iloc[0]) if len(chunk) else False
            generations = backend.generate(chunk["prompt"].tolist(), max_new_tokens, templated,
                                           stop_when=answer_complete)
            frame = chunk[["id", "context_lang", "question_lang", "answer_lang", "gold"]].copy()
            frame.insert(0, "prompt_format", prompt_format)
            frame.insert(0, "shots", shots)
            frame.insert(0, "model", model)
            frame["raw_output"] = [g.text for g in generations]
            frame["prediction"] = [extract_answer(g.text) for g in generations]
            frame["prompt_tokens"] = [g.prompt_tokens for g in generations]
            frame["output_tokens"] = [g.output_tokens for g in generations]
            write_parquet_atomic(frame[GENERATION_COLUMNS], shard)
        frames.append(pd.read_parquet(shard))
    result = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=GENERATION_COLUMNS)
    write_parquet_atomic(result, output)
    shutil.rmtree(shard_dir, ignore_errors=True)
    return result
