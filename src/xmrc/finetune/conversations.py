"""SFT conversations in the messages format LLaMA-Factory reads (sharegpt layout with role/content tags).

A conversation is a list of `{"role": ..., "content": ...}` turns: an optional leading `system` turn, then
`user` and `assistant` alternating, starting with `user` and ending with `assistant`, no empty content. That
is exactly what LLaMA-Factory's sharegpt converter accepts; anything else it would drop with a log line, so we
check first and report every rejected conversation by id and reason instead.

Training table (Parquet), one row per conversation kept:
    id        str   the source's id (TULU-3: its `id` field), else the row number
    source    str   the source's `source` field where present (TULU-3 sub-dataset), else ""
    messages  list<struct<role: str, content: str>>
Problems table (CSV): id, reason.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterable, Iterator
from pathlib import Path

import pandas as pd

from xmrc.exceptions import XmrcError
from xmrc.io import read_table

ROLES = ("system", "user", "assistant")
PROBLEM_COLUMNS = ["id", "reason"]


def conversation_problem(messages) -> str | None:
    """Why LLaMA-Factory could not train on `messages`, or None when it can."""
    if not isinstance(messages, (list, tuple)) or len(messages) == 0:
        return "no messages"
    turns = list(messages)
    for index, turn in enumerate(turns):
        if not isinstance(turn, dict) or "role" not in turn or "content" not in turn:
            return f"turn {index}: not a {{role, content}} mapping"
        if turn["role"] not in ROLES:
            return f"turn {index}: unknown role {turn['role']!r}"
        if not isinstance(turn["content"], str) or not turn["content"].strip():
            return f"turn {index}: empty {turn['role']} content"
    start = 1 if turns[0]["role"] == "system" else 0
    dialogue = turns[start:]
    if not dialogue:
        return "system turn only"
    for offset, turn in enumerate(dialogue):
        expected = "user" if offset % 2 == 0 else "assistant"
        if turn["role"] != expected:
            return f"turn {start + offset}: expected {expected}, found {turn['role']}"
    if dialogue[-1]["role"] != "assistant":
        return "ends without an assistant turn"
    return None


def _plain(messages) -> list[dict]:
    return [{"role": str(turn["role"]), "content": str(turn["content"])} for turn in messages]


def split_valid(records: Iterable[dict]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(conversations LLaMA-Factory can train on, problems by id) from records with a `messages` field."""
    kept, problems = [], []
    for number, record in enumerate(records):
        item_id = str(record.get("id", number))
        messages = record.get("messages")
        if hasattr(messages, "tolist"):  # numpy arrays from Parquet
            messages = messages.tolist()
        reason = conversation_problem(messages)
        if reason is None:
            kept.append({"id": item_id, "source": str(record.get("source") or ""), "messages": _plain(messages)})
        else:
            problems.append({"id": item_id, "reason": reason})
    return (pd.DataFrame(kept, columns=["id", "source", "messages"]), pd.DataFrame(problems, columns=PROBLEM_COLUMNS))


def problem_reasons(problems: pd.DataFrame) -> str:
    """'3 empty content; 1 unknown role': how often each reason of split_valid's problems occurs, any turn."""
    reasons = problems["reason"].str.replace(r"^turn \d+: ", "", regex=True).value_counts()
    return "; ".join(f"{count} {reason}" for reason, count in reasons.items())


def subsample(table: pd.DataFrame, limit: int | None, seed: int) -> pd.DataFrame:
    """A seeded random subset of `limit` rows in their original order (all rows when limit is None)."""
    if limit is None or limit >= len(table):
        return table.reset_index(drop=True)
    chosen = sorted(random.Random(seed).sample(range(len(table)), limit))
    return table.iloc[chosen].reset_index(drop=True)


def _iter_jsonl(path: Path) -> Iterator[dict]:
    with path.open(encoding="utf-8") as handle:
        for line_number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                yield json.loads(line)
            except json.JSONDecodeError:
                raise XmrcError(f"{path}: line {line_number} is not valid JSON") from None


def read_local(path: str | Path) -> list[dict]:
    """Records of a local conversation file: JSON lines, a JSON list, or Parquet, each with `messages`."""
    path = Path(path)
    if not path.is_file():
        raise XmrcError(f"{path}: conversation file not found")
    if path.suffix == ".parquet":
        records = read_table(path).to_dict("records")
    elif path.suffix == ".json":
        try:
            records = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as error:
            raise XmrcError(f"{path}: not valid JSON ({error.msg}, line {error.lineno})") from None
        if not isinstance(records, list):
            raise XmrcError(f"{path}: expected a JSON list of conversations")
    else:
        records = list(_iter_jsonl(path))
    if records and not all(isinstance(r, dict) and "messages" in r for r in records):
        raise XmrcError(f"{path}: every record needs a 'messages' field (TULU-3 / LLaMA-Factory messages format)")
    return records


def read_hub(hub_id: str, revision: str | None) -> Iterable[dict]:
    """The `train` split of a hub dataset in messages format, e.g. allenai/tulu-3-sft-mixture."""
    import datasets

    try:
        return datasets.load_dataset(hub_id, split="train", revision=revision)
    except Exception as error:  # offline, unknown id, gated: one line, not a traceback
        raise XmrcError(
            f"dataset {hub_id}: cannot load from the hub ({type(error).__name__}: "
            f"{str(error).splitlines()[0] if str(error) else ''})"
        ) from None
