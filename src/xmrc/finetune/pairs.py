"""Question-translation training pairs (X -> target) from the parallel XQuAD questions, with an article split.

The split is by article (`title`), so no question of an evaluated article, in any language, is ever trained
on: a seeded share of the articles is held out for evaluation and the pairs come from the others only. The
articles of the 2-shot demonstrations always go to training (their items are in the 2-shot prompts), so the
held-out items are the same at every shots setting.

Split table (CSV): title, split (train|eval), items.  Held-out ids (text): one XQuAD id per line, the eval
articles' items minus the demonstrations: what the tuned model (and its base, in the comparison) is scored on.

Pairs table (Parquet), one row per training pair, shuffled (a random mixture of the source languages):
    id           str   XQuAD id (or the external file's id / row number)
    origin       str   "xquad" or the external file name
    source_lang  str   language of the question to translate
    target_lang  str
    source_text  str
    target_text  str
    messages     list<struct<role, content>>   user: instruction + source question; assistant: target question
External pair files (JSON lines or Parquet) need source_lang, target_lang, source_text, target_text.
"""

from __future__ import annotations

import math
import random
from pathlib import Path

import pandas as pd

from xmrc import LANGUAGE_NAMES
from xmrc.exceptions import XmrcError
from xmrc.io import read_parquet, require_columns

SPLIT_COLUMNS = ["title", "split", "items"]
PAIR_COLUMNS = ["id", "origin", "source_lang", "target_lang", "source_text", "target_text", "messages"]
EXTERNAL_COLUMNS = ["source_lang", "target_lang", "source_text", "target_text"]
DEFAULT_INSTRUCTION = "Translate the following question into {target}.\n{question}"


def split_articles(table: pd.DataFrame, eval_fraction: float, seed: int, demonstration_ids: list[str]) -> pd.DataFrame:
    """Each article of the XQuAD table marked train or eval (at least one of each when possible)."""
    english = table[table["lang"] == "en"]
    items = english.groupby("title", sort=True)["id"].size()
    demo_titles = set(english.loc[english["id"].isin(demonstration_ids), "title"])
    candidates = [title for title in items.index if title not in demo_titles]
    random.Random(seed).shuffle(candidates)
    n_eval = min(len(candidates), max(1, math.ceil(eval_fraction * len(items)))) if candidates else 0
    if n_eval == len(items) and n_eval > 1:
        n_eval -= 1  # keep something to train on
    held_out = set(candidates[:n_eval])
    return pd.DataFrame(
        {
            "title": items.index,
            "split": ["eval" if t in held_out else "train" for t in items.index],
            "items": items.values,
        },
        columns=SPLIT_COLUMNS,
    )


def held_out_ids(table: pd.DataFrame, split: pd.DataFrame, demonstration_ids: list[str]) -> list[str]:
    eval_titles = set(split.loc[split["split"] == "eval", "title"])
    english = table[table["lang"] == "en"]
    return [
        item
        for item, title in zip(english["id"], english["title"])
        if title in eval_titles and item not in set(demonstration_ids)
    ]


def instruction_messages(
    source_text: str, target_text: str, target_lang: str, instruction: str = DEFAULT_INSTRUCTION
) -> list[dict]:
    prompt = instruction.format(target=LANGUAGE_NAMES.get(target_lang, target_lang), question=source_text)
    return [{"role": "user", "content": prompt}, {"role": "assistant", "content": target_text}]


def check_request(instruction: str, sources: list[str], target: str) -> None:
    """Pairs can be built: the instruction template has a {question} slot, no source is the target."""
    if "{question}" not in instruction:
        raise XmrcError("--instruction: the template needs a {question} placeholder")
    if target in sources:
        raise XmrcError(f"question translation: target language {target} is also a source")


def xquad_pairs(table: pd.DataFrame, split: pd.DataFrame, sources: list[str], target: str) -> pd.DataFrame:
    """Every (source question, target question) of the training articles, for each source language."""
    train_titles = set(split.loc[split["split"] == "train", "title"])
    present = set(table["lang"])
    missing = [lang for lang in [*sources, target] if lang not in present]
    if missing:
        raise XmrcError(
            f"question translation: language(s) {', '.join(missing)} not in the XQuAD data "
            f"(present: {', '.join(sorted(present))})"
        )
    rows = table[table["title"].isin(train_titles)]
    targets = rows[rows["lang"] == target].set_index("id")["question"]
    frames = []
    for lang in sources:
        questions = rows[rows["lang"] == lang].set_index("id")["question"]
        common = [item for item in questions.index if item in targets.index]
        frames.append(
            pd.DataFrame(
                {
                    "id": common,
                    "origin": "xquad",
                    "source_lang": lang,
                    "target_lang": target,
                    "source_text": questions.loc[common].values,
                    "target_text": targets.loc[common].values,
                }
            )
        )
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=PAIR_COLUMNS[:-1])


def read_external(path: str | Path) -> pd.DataFrame:
    path = Path(path)
    if not path.is_file():
        raise XmrcError(f"{path}: translation pair file not found")
    try:
        frame = read_parquet(path) if path.suffix == ".parquet" else pd.read_json(path, lines=True)
    except Exception as error:
        raise XmrcError(
            f"{path}: not a readable pair table ({type(error).__name__}); expected JSON lines or Parquet"
        ) from None
    require_columns(frame, EXTERNAL_COLUMNS, path)
    empty = (
        frame[EXTERNAL_COLUMNS].isna().any(axis=1)
        | (frame["source_text"].astype(str).str.strip() == "")
        | (frame["target_text"].astype(str).str.strip() == "")
    )
    if empty.any():
        raise XmrcError(f"{path}: row {int(empty.idxmax())} has an empty field")
    ids = frame["id"].astype(str) if "id" in frame.columns else pd.Series(range(len(frame))).astype(str)
    return frame[EXTERNAL_COLUMNS].assign(id=ids.values, origin=path.name)


def build_pairs(
    pool: pd.DataFrame,
    sources: list[str],
    target: str,
    max_per_source: int | None,
    seed: int,
    instruction: str = DEFAULT_INSTRUCTION,
) -> pd.DataFrame:
    """At most `max_per_source` pairs per source language (seeded sample), randomly mixed, with messages."""
    pool = pool[pool["source_lang"].isin(sources) & (pool["target_lang"] == target)]
    rng = random.Random(seed)
    chosen = []
    for lang in sources:
        rows = pool[pool["source_lang"] == lang]
        if rows.empty:
            raise XmrcError(
                f"question translation: no {lang}->{target} pairs (no training article, or the external file has none)"
            )
        take = (
            list(range(len(rows)))
            if max_per_source is None or max_per_source >= len(rows)
            else rng.sample(range(len(rows)), max_per_source)
        )
        chosen.append(rows.iloc[sorted(take)])
    pairs = pd.concat(chosen, ignore_index=True)
    order = list(range(len(pairs)))
    rng.shuffle(order)
    pairs = pairs.iloc[order].reset_index(drop=True)
    pairs["messages"] = [
        instruction_messages(s, t, target, instruction) for s, t in zip(pairs["source_text"], pairs["target_text"])
    ]
    return pairs[PAIR_COLUMNS]
