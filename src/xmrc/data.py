"""XQuAD: load from the hub or from the original JSON files, validate, and write one Parquet table.

Table columns (one row per item and language):
    id               str   SQuAD question id, the same in every language
    title            str   article title (English, as in the original files)
    paragraph_index  int   index of the paragraph inside its article
    lang             str   ISO code, one of xmrc.LANGUAGES
    context          str
    question         str
    answer_text      str   the single gold answer
    answer_start     int   character offset of answer_text in context
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Iterable

import pandas as pd

from xmrc.exceptions import XmrcError

COLUMNS = ["id", "title", "paragraph_index", "lang", "context", "question", "answer_text", "answer_start"]


def read_squad_json(path: Path, lang: str) -> pd.DataFrame:
    """Rows of one original XQuAD file (SQuAD v1.1 layout)."""
    try:
        document = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise XmrcError(f"{path}: XQuAD file not found") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise XmrcError(f"{path}: not valid JSON ({error})") from None
    rows = []
    try:
        for article in document["data"]:
            for paragraph_index, paragraph in enumerate(article["paragraphs"]):
                for qa in paragraph["qas"]:
                    answer = qa["answers"][0]
                    rows.append((qa["id"], article["title"], paragraph_index, lang, paragraph["context"],
                                 qa["question"], answer["text"], int(answer["answer_start"])))
    except (KeyError, IndexError, TypeError) as error:
        raise XmrcError(f"{path}: not in SQuAD v1.1 layout (missing {error})") from None
    return pd.DataFrame(rows, columns=COLUMNS)


def load_local(directory: Path, languages: Iterable[str]) -> pd.DataFrame:
    """All languages from a directory of original files named xquad.<lang>.json."""
    frames = [read_squad_json(Path(directory) / f"xquad.{lang}.json", lang) for lang in languages]
    return pd.concat(frames, ignore_index=True)


def article_map() -> pd.DataFrame:
    """id -> (title, paragraph_index) for all 1190 XQuAD items: the hub copy lacks titles."""
    with resources.files("xmrc").joinpath("resources/xquad_articles.csv").open(encoding="utf-8") as f:
        return pd.read_csv(f, dtype={"id": str, "title": str, "paragraph_index": int})


def rows_from_hub_records(records: Iterable[dict], lang: str) -> pd.DataFrame:
    """Rows from records in the hub layout (id, context, question, answers{text, answer_start})."""
    rows = [(r["id"], r["context"], r["question"], r["answers"]["text"][0], int(r["answers"]["answer_start"][0]))
            for r in records]
    frame = pd.DataFrame(rows, columns=["id", "context", "question", "answer_text", "answer_start"])
    frame = frame.merge(article_map(), on="id", how="left")
    # Items unknown to the map (another XQuAD release) keep a per-context paragraph index.
    unknown = frame["title"].isna()
    frame.loc[unknown, "title"] = ""
    frame.loc[unknown, "paragraph_index"] = frame.loc[unknown, "context"].factorize()[0]
    frame["paragraph_index"] = frame["paragraph_index"].astype(int)
    frame["lang"] = lang
    return frame[COLUMNS]


def load_hub(hub_id: str, languages: Iterable[str], revision: str | None = None) -> pd.DataFrame:
    """All languages from the hub (`datasets`), configs xquad.<lang>, split validation."""
    import datasets  # heavy; only the hub path needs it

    frames = []
    for lang in languages:
        try:
            split = datasets.load_dataset(hub_id, f"xquad.{lang}", split="validation", revision=revision)
        except Exception as error:  # network, auth, missing config: all one line for the user
            raise XmrcError(f"{hub_id} (xquad.{lang}): could not load from the hub: "
                            f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}") from None
        frames.append(rows_from_hub_records(split, lang))
    return pd.concat(frames, ignore_index=True)


@dataclass(frozen=True)
class Problem:
    id: str
    lang: str
    kind: str  # "not_parallel" | "answer_not_at_start" | "answer_not_in_context" | "duplicate_id"
    detail: str


def validate(table: pd.DataFrame, languages: Iterable[str]) -> list[Problem]:
    """Every problem found, by id: ids not parallel across languages, answers not at their offsets."""
    languages = list(languages)
    problems = []
    for lang, group in table.groupby("lang", sort=False):
        for item_id in group["id"][group["id"].duplicated()]:
            problems.append(Problem(item_id, lang, "duplicate_id", "id appears more than once"))
    ids_by_lang = {lang: set(table.loc[table["lang"] == lang, "id"]) for lang in languages}
    all_ids = set().union(*ids_by_lang.values()) if ids_by_lang else set()
    for lang, ids in ids_by_lang.items():
        for item_id in sorted(all_ids - ids):
            problems.append(Problem(item_id, lang, "not_parallel", f"missing in {lang}"))
    for row in table.itertuples(index=False):
        end = row.answer_start + len(row.answer_text)
        if row.context[row.answer_start:end] == row.answer_text:
            continue
        if row.answer_text in row.context:
            found = row.context.index(row.answer_text)
            problems.append(Problem(row.id, row.lang, "answer_not_at_start",
                                    f"answer_start {row.answer_start}, found at {found}"))
        else:
            problems.append(Problem(row.id, row.lang, "answer_not_in_context", repr(row.answer_text)))
    return problems


def describe(problems: list[Problem], kind: str, limit: int = 5) -> str:
    """A one-line summary of the problems of one kind, naming the first ids."""
    chosen = [p for p in problems if p.kind == kind]
    shown = ", ".join(f"{p.id} ({p.detail})" for p in chosen[:limit])
    more = f" and {len(chosen) - limit} more" if len(chosen) > limit else ""
    return f"{len(chosen)} {kind.replace('_', ' ')}: {shown}{more}"


def prepare(table: pd.DataFrame, languages: Iterable[str]) -> tuple[pd.DataFrame, list[Problem]]:
    """Validated table in paper language order. Non-parallel or duplicate ids are fatal (every later step
    pairs languages by id); answers off their offsets are only reported."""
    languages = list(languages)
    missing = [lang for lang in languages if not (table["lang"] == lang).any()]
    if missing:
        raise XmrcError(f"XQuAD data has no rows for language(s): {', '.join(missing)}")
    table = table[table["lang"].isin(languages)]
    problems = validate(table, languages)
    for kind in ("duplicate_id", "not_parallel"):
        if any(p.kind == kind for p in problems):
            raise XmrcError(f"XQuAD data: {describe(problems, kind)}")
    order = {lang: i for i, lang in enumerate(languages)}
    table = table.assign(_order=table["lang"].map(order)).sort_values(["_order"], kind="stable")
    return table.drop(columns="_order").reset_index(drop=True), problems
