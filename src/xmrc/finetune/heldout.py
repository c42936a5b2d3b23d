"""A base model on the held-out articles: the prompts -> generate -> score chain of the main rules, over every
(shots, format) setting in one process (one interpreter start, one model load, on vLLM one engine), through
the same functions as the prompts, generate-job and score commands; each step resumes like the main one."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from xmrc.exceptions import XmrcError
from xmrc.generation import run_generation
from xmrc.hub.models import BackendSettings, chat_template, choose_backend, model_and_weights, open_backend
from xmrc.io import read_table, write_parquet
from xmrc.prompts import PAPER_LAYOUT, Layout, build_prompt_table
from xmrc.scoring import score_table

OUTPUTS = ("prompts", "generations", "scores")


@dataclass(frozen=True)
class HeldOutItems:
    """What is evaluated: the data table's held-out `ids` in `languages`, with the main run's demonstrations."""

    table: pd.DataFrame
    ids: list[str]
    languages: list[str]
    demonstrations: list[str]
    max_items: int | None = None


def setting_paths(out_dir: str | Path, model_key: str, shots: int, prompt_format: str) -> dict[str, Path]:
    """{prompts,generations,scores}/<model>/<shots>shot-<format>.parquet under `out_dir`."""
    stem = f"{shots}shot-{prompt_format}.parquet"
    return {output: Path(out_dir) / output / model_key / stem for output in OUTPUTS}


def evaluate_heldout(
    registry: str | Path,
    model_key: str,
    weights: str | None,
    items: HeldOutItems,
    settings: list[tuple[int, str]],
    out_dir: str | Path,
    *,
    backend: str = "auto",
    backend_settings: BackendSettings | None = None,
    max_new_tokens: int = 64,
    chunk_size: int = 256,
    normalization: str = "mlqa",
    layout: Layout = PAPER_LAYOUT,
    extraction: str = "first_line",
) -> list[dict]:
    """Score `model_key` on `items` at each (shots, format) of `settings`; a setting whose scores exist is
    skipped. Returns, per setting evaluated, its paths and row counts."""
    model, weights = model_and_weights(registry, model_key, weights)
    if model.backend == "api":
        raise XmrcError(f"model '{model.key}' is an API model: it has no weights to finetune or evaluate here")
    kind = choose_backend(model, backend)
    template, generator, done = chat_template(model, weights, layout.system_prompt), None, []
    for shots, prompt_format in settings:
        paths = setting_paths(out_dir, model_key, shots, prompt_format)
        if paths["scores"].is_file():
            continue
        prompts = build_prompt_table(
            items.table,
            items.languages,
            shots,
            prompt_format,
            items.demonstrations,
            template,
            items.max_items,
            items.ids,
            layout=layout,
        )
        write_parquet(prompts, paths["prompts"])
        if generator is None:  # loaded once, for the first setting that still needs generations
            generator = open_backend(model, kind, backend_settings or BackendSettings(), weights)
        generations = run_generation(
            read_table(paths["prompts"]),
            generator,
            paths["generations"],
            model=model.name,
            shots=shots,
            prompt_format=prompt_format,
            max_new_tokens=max_new_tokens,
            chunk_size=chunk_size,
            order="prefix",
            extraction=extraction,
        )
        scores = score_table(read_table(paths["generations"]), normalization)  # as the score command reads it
        write_parquet(scores, paths["scores"])
        done.append(
            {
                "shots": shots,
                "prompt_format": prompt_format,
                "kind": kind,
                **paths,
                "prompts_n": len(prompts),
                "generations_n": len(generations),
            }
        )
    return done
