"""A dataset of the registry (XQuAD, MLQA: xmrc.dataset_registry): load from the hub or from its own JSON files,
validate, and write one Parquet table.

Table columns (one row per item and language; the context and the question of a row are in its language):
    id               str   question id, the same in every language that has the item
    title            str   article title (XQuAD: English, as in the original files)
    paragraph_index  int   index of the paragraph inside its article
    lang             str   ISO code, one of xmrc.LANGUAGES
    context          str
    question         str
    answer_text      str   the single gold answer
    answer_start     int   character offset of answer_text in context
"""

from __future__ import annotations

import gzip
import json
import lzma
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import pandas as pd

from xmrc import dataset_registry
from xmrc.dataset_registry import Dataset
from xmrc.exceptions import XmrcError

COLUMNS = ["id", "title", "paragraph_index", "lang", "context", "question", "answer_text", "answer_start"]


DECOMPRESSORS = {".xz": lzma.decompress, ".gz": gzip.decompress}


def read_text(path: Path) -> str:
    """A file's UTF-8 text, decompressed in memory when its name ends in .xz or .gz (the bundled data/xquad);
    a damaged compressed file is one XmrcError line naming it."""
    decompress = DECOMPRESSORS.get(path.suffix)
    if decompress is None:
        return path.read_text(encoding="utf-8")
    compressed = path.read_bytes()
    try:
        raw = decompress(compressed)
    except (lzma.LZMAError, EOFError, OSError, zlib.error) as error:  # OSError: gzip.BadGzipFile
        raise XmrcError(f"{path}: damaged {path.suffix[1:]} file ({error})") from None
    return raw.decode("utf-8")


def squad_records(path: Path, name: str = "XQuAD") -> list[dict]:
    """The items of one file in the SQuAD v1.1 layout (XQuAD's and MLQA's own files) as records in the hub
    layout (id, title, context, question, answers{text, answer_start}) plus paragraph_index."""
    try:
        document = json.loads(read_text(Path(path)))
    except FileNotFoundError:
        raise XmrcError(f"{path}: {name} file not found") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise XmrcError(f"{path}: not valid JSON ({error})") from None
    records = []
    try:
        for article in document["data"]:
            for paragraph_index, paragraph in enumerate(article["paragraphs"]):
                for qa in paragraph["qas"]:
                    records.append(
                        {
                            "id": qa["id"],
                            "title": article["title"],
                            "paragraph_index": paragraph_index,
                            "context": paragraph["context"],
                            "question": qa["question"],
                            "answers": {
                                "text": [a["text"] for a in qa["answers"]],
                                "answer_start": [a["answer_start"] for a in qa["answers"]],
                            },
                        }
                    )
    except (KeyError, TypeError) as error:
        raise XmrcError(f"{path}: not in SQuAD v1.1 layout (missing {error})") from None
    return records


def read_squad_json(path: Path, lang: str, name: str = "XQuAD") -> pd.DataFrame:
    """Rows of one original file (SQuAD v1.1 layout)."""
    return rows_from_records(squad_records(path, name), lang, str(path))


def _dataset(dataset: Dataset | None) -> Dataset:
    return dataset if dataset is not None else dataset_registry.get(dataset_registry.DEFAULT_DATASET)


def load_local(
    directory: Path, languages: Iterable[str], dataset: Dataset | None = None, split: str | None = None
) -> pd.DataFrame:
    """All languages from a directory of the dataset's own files (XQuAD: xquad.<lang>.json; MLQA:
    <split>-context-<lang>-question-<lang>.json), of the evaluation split unless `split` says otherwise. A
    file may be compressed (xquad.<lang>.json.xz or .gz, used when the plain file is absent)."""
    dataset = _dataset(dataset)
    split = split or dataset.evaluation_split
    frames = [
        read_squad_json(dataset.local_file(Path(directory), split, lang), lang, dataset.name) for lang in languages
    ]
    return pd.concat(frames, ignore_index=True)


def article_map() -> pd.DataFrame:
    """id -> (title, paragraph_index) for all 1190 XQuAD items: the hub copy lacks titles."""
    with resources.files("xmrc").joinpath("resources/xquad_articles.csv").open(encoding="utf-8") as f:
        return pd.read_csv(f, dtype={"id": str, "title": str, "paragraph_index": int})


def rows_from_records(records: Iterable[dict], lang: str, source: str) -> pd.DataFrame:
    """Table rows from records in the hub layout (id, context, question, answers{text, answer_start}, and
    optionally title and paragraph_index): what both the hub and the local files become. The first answer
    is the gold one. Without a title (the XQuAD hub copy) title and paragraph index come from the packaged
    XQuAD map; without a paragraph index (the MLQA hub copy) it is the context's order inside its article."""
    rows = []
    try:
        for r in records:
            rows.append(
                (
                    r["id"],
                    r.get("title"),
                    r.get("paragraph_index"),
                    lang,
                    r["context"],
                    r["question"],
                    r["answers"]["text"][0],
                    int(r["answers"]["answer_start"][0]),
                )
            )
    except (KeyError, IndexError, TypeError) as error:
        raise XmrcError(f"{source}: not in SQuAD v1.1 layout (missing {error})") from None
    frame = pd.DataFrame(rows, columns=COLUMNS)
    untitled = frame["title"].isna()
    if untitled.any():
        mapped = frame.loc[untitled, ["id"]].merge(article_map(), on="id", how="left")
        frame.loc[untitled, "title"] = mapped["title"].to_numpy()
        frame.loc[untitled, "paragraph_index"] = mapped["paragraph_index"].to_numpy()
    # Items unknown to the map (another XQuAD release) keep a per-context paragraph index.
    unknown = frame["paragraph_index"].isna()
    frame.loc[unknown & frame["title"].isna(), "title"] = ""
    if unknown.any():
        frame.loc[unknown, "paragraph_index"] = (
            frame[unknown].groupby("title", sort=False)["context"].transform(lambda contexts: contexts.factorize()[0])
        )
    frame["paragraph_index"] = frame["paragraph_index"].astype(int)
    return frame


def rows_from_hub_records(records: Iterable[dict], lang: str) -> pd.DataFrame:
    """Rows from XQuAD records in the hub layout (no titles: from the packaged map)."""
    return rows_from_records(records, lang, "hub records")


def load_hub(
    hub_id: str | None,
    languages: Iterable[str],
    revision: str | None = None,
    dataset: Dataset | None = None,
    split: str | None = None,
) -> pd.DataFrame:
    """All languages from the hub (`datasets`): per language its monolingual config (XQuAD: xquad.<lang>;
    MLQA: mlqa.<lang>.<lang>), of the evaluation split unless `split` says otherwise."""
    import datasets  # heavy; only the hub path needs it

    dataset = _dataset(dataset)
    hub_id = hub_id or dataset.hub_id
    split = split or dataset.evaluation_split
    frames = []
    for lang in languages:
        config = dataset.config_name(lang, lang)
        try:
            records = datasets.load_dataset(hub_id, config, split=split, revision=revision)
        except Exception as error:  # network, auth, missing config: all one line for the user
            raise XmrcError(
                f"{hub_id} ({config}): could not load from the hub: "
                f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"
            ) from None
        frames.append(rows_from_records(records, lang, f"{hub_id} ({config}, {split})"))
    return pd.concat(frames, ignore_index=True)


@dataclass(frozen=True)
class Problem:
    id: str
    lang: str
    kind: str  # "not_parallel" | "answer_not_at_start" | "answer_not_in_context" | "duplicate_id"
    detail: str


def validate(table: pd.DataFrame, languages: Iterable[str], parallel: bool = True) -> list[Problem]:
    """Every problem found, by id: ids not parallel across languages (when they should be), answers not at
    their offsets."""
    languages = list(languages)
    problems = []
    for lang, group in table.groupby("lang", sort=False):
        for item_id in group["id"][group["id"].duplicated()]:
            problems.append(Problem(item_id, lang, "duplicate_id", "id appears more than once"))
    ids_by_lang = {lang: set(table.loc[table["lang"] == lang, "id"]) for lang in languages} if parallel else {}
    all_ids = set().union(*ids_by_lang.values()) if ids_by_lang else set()
    for lang, ids in ids_by_lang.items():
        for item_id in sorted(all_ids - ids):
            problems.append(Problem(item_id, lang, "not_parallel", f"missing in {lang}"))
    for row in table.itertuples(index=False):
        end = row.answer_start + len(row.answer_text)
        if row.context[row.answer_start : end] == row.answer_text:
            continue
        if row.answer_text in row.context:
            found = row.context.index(row.answer_text)
            problems.append(
                Problem(row.id, row.lang, "answer_not_at_start", f"answer_start {row.answer_start}, found at {found}")
            )
        else:
            problems.append(Problem(row.id, row.lang, "answer_not_in_context", repr(row.answer_text)))
    return problems


def describe(problems: list[Problem], kind: str, limit: int = 5) -> str:
    """A one-line summary of the problems of one kind, naming the first ids."""
    chosen = [p for p in problems if p.kind == kind]
    shown = ", ".join(f"{p.id} ({p.detail})" for p in chosen[:limit])
    more = f" and {len(chosen) - limit} more" if len(chosen) > limit else ""
    return f"{len(chosen)} {kind.replace('_', ' ')}: {shown}{more}"


def problems_table(problems: list[Problem]) -> pd.DataFrame:
    """The problems report of the data command (CSV): id, lang, kind, detail."""
    return pd.DataFrame([p.__dict__ for p in problems], columns=["id", "lang", "kind", "detail"])


def prepare(
    table: pd.DataFrame, languages: Iterable[str], dataset: Dataset | None = None, split: str | None = None
) -> tuple[pd.DataFrame, list[Problem]]:
    """Validated table in the given language order. Duplicate ids are fatal, and so are non-parallel ids of a
    parallel dataset (every later step pairs languages by id); answers off their offsets are only reported."""
    dataset = _dataset(dataset)
    what = dataset.name + (f" {split}" if split else "")
    languages = list(languages)
    missing = [lang for lang in languages if not (table["lang"] == lang).any()]
    if missing:
        raise XmrcError(f"{what} data has no rows for language(s): {', '.join(missing)}")
    table = table[table["lang"].isin(languages)]
    problems = validate(table, languages, parallel=dataset.alignment == "parallel")
    for kind in ("duplicate_id", "not_parallel"):
        if any(p.kind == kind for p in problems):
            raise XmrcError(f"{what} data: {describe(problems, kind)}")
    order = {lang: i for i, lang in enumerate(languages)}
    table = table.assign(_order=table["lang"].map(order)).sort_values(["_order"], kind="stable")
    return table.drop(columns="_order").reset_index(drop=True), problems
