"""The measured inputs: real XQuAD 2-shot prompts of the bundled subset (data/xquad_subset), built with the
package's own prompt functions as the workflow builds them (the paper config's demonstrations and layout), and
the oracle's items (the English context cut into sentence units, the target the model's own greedy answer).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from bench.gpu import ROOT

DEMONSTRATIONS = ["56dde1d966d3e219004dad8d", "56de49564396321400ee277a"]  # the paper config's
LANGUAGES = ["en", "de", "es", "zh", "ar"]  # en-x and x-x with three scripts; es and zh feed the LoRA pairs


def paper_config(path: Path) -> dict:
    import yaml

    return yaml.safe_load(Path(path).read_text(encoding="utf-8"))


def load_table(languages: list[str] = LANGUAGES):
    from xmrc.data import load_local, prepare

    table, _ = prepare(load_local(ROOT / "data" / "xquad_subset", languages), languages)
    return table


def corpus(table) -> list[str]:
    """The texts the builder trains its tokenizer on: every context once, every question."""
    return list(dict.fromkeys(table["context"])) + table["question"].tolist()


def prompt_table(table, tokenizer, items: int, prompt_format: str, chat: bool, demonstrations: list[str]):
    """2-shot prompts of the first `items` items in every en-x and x-x direction of the table's languages."""
    from xmrc.prompts import build_prompt_table, hf_chat_template

    languages = list(dict.fromkeys(table["lang"]))
    template = hf_chat_template(tokenizer) if chat else None
    return build_prompt_table(table, languages, 2, prompt_format, demonstrations, template, items)


def interleaved(prompts, scenario: str):
    """Rows of one scenario (en-x: English context) ordered item by item across directions, so a stage cut short
    by its budget has still seen every direction."""
    rows = prompts[prompts["context_lang"] == "en"] if scenario == "en-x" else prompts
    order = rows.assign(_direction=rows.groupby("id").cumcount()).sort_values("_direction", kind="stable")
    return order.drop(columns="_direction").reset_index(drop=True)


@dataclass
class OracleInput:
    item: object  # xmrc.analysis.oracle.ablation.AblationItem
    gold: int  # gold unit
    prompt_tokens: int
    direction: str


def oracle_inputs(prompts, table, model, tokenizer, count: int, target_tokens: int, batch_size: int) -> list:
    """Up to `count` en-x items with at least two sentence units, each with the model's own greedy answer
    (`target_tokens` tokens, cut after a stop id) as the target; its first token is the Step target."""
    from xmrc.analysis.oracle.ablation import Target, encode, item_from_prompt
    from xmrc.analysis.oracle.sentences import context_units
    from xmrc.backends.hf import generate_until

    english = table[table["lang"] == "en"].set_index("id")
    chosen = []
    for row in interleaved(prompts, "en-x").itertuples():
        gold = english.loc[row.id]
        found = context_units(gold["context"], gold["answer_text"], int(gold["answer_start"]), "en")
        if found.gold is None or len(found.units) < 2:
            continue
        chosen.append((row, [(u.start, u.end) for u in found.units], found.gold))
        if len(chosen) == count:
            break
    encoded = [encode(tokenizer, row.prompt, row.templated) for row, _, _ in chosen]
    generated = generate_until(model, tokenizer, encoded, target_tokens, batch_size)
    stops = _stop_ids(model, tokenizer)
    inputs = []
    for (row, spans, gold), ids, new in zip(chosen, encoded, generated):
        target = _through_first_stop([int(t) for t in new], stops)
        item = item_from_prompt(row.prompt, int(row.context_start), spans, bool(row.templated), Target(target, 0))
        inputs.append(OracleInput(item, gold, len(ids), f"{row.context_lang}-{row.question_lang}"))
    return inputs


def _through_first_stop(ids: list[int], stops: set[int]) -> list[int]:
    """The generated ids through the first stop id (kept), as the workflow's targets end."""
    for index, token in enumerate(ids):
        if token in stops:
            return ids[: index + 1]
    return ids


def _stop_ids(model, tokenizer) -> set[int]:
    eos = model.generation_config.eos_token_id
    stops = set(eos if isinstance(eos, list) else [eos] if eos is not None else [])
    if tokenizer.pad_token_id is not None:
        stops.add(tokenizer.pad_token_id)
    return stops
