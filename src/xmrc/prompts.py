"""The paper's xMRC prompts (Appendix A.3, formats v1 and v2; 0- and 2-shot, or any k-shot) with part spans.

A prompt is built from plain strings; the only model-specific step is the chat template, which the caller
passes in as a function (a tokenizer's `apply_chat_template`), so the same text reaches every backend.

Part spans are character offsets into the final prompt string (after the chat template):
task_description, demonstrations (the whole demonstration block), context and question (of the test item).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from xmrc import LANGUAGE_NAMES
from xmrc.dataset_registry import direction_items
from xmrc.exceptions import XmrcError, check_choice

PARTS = ("task_description", "demonstrations", "context", "question")

_INTRO = (
    "Below is a reading comprehension task. There will be paragraphs of context, each followed by a "
    "question related to its content. "
)
_INSTRUCTION = (
    "You should only present your answer to the last question by strictly copying the corresponding "
    "part of the context. Please provide a direct answer in {language} without extra output. Your "
    "answer should be in the form of \u201cAnswer: {{Your Answer}}\u201d"
)
TASK_START = "Your task starts here:"
FORMATS = ("v1", "v2")
# Bump when a change here alters prompt tables: the workflow passes it as a param of the prompts rule, so
# stale prompt tables (and the generations made from them) are rebuilt. 1: 0-shot tests the demonstration items.
# 2: the protocol switches (layout, answer cue, answer language, system prompt). 3: under the paper layout the
# demonstrations span started on the second line break of the separator before it.
CODE_VERSION = 3

# How prompt elements are separated (protocol.layout). Appendix A.3 prints a blank line between every element
# (system prompt, instruction, each Context/Question/Answer line, "Your task starts here:"); "compact" is
# one line break, this project's reading before the switch existed.
LAYOUTS = {"paper": "\n\n", "compact": "\n"}
# What ends a base model's prompt (protocol.answer_cue): "none" ends it where A.3 does (at the question in v1,
# at the instruction in v2); "label" appends "Answer:" so the model's first token is the answer's.
ANSWER_CUES = ("none", "label")
# Which language the instruction names (protocol.answer_language): "named" says the answer language's English
# name ("in German" for de-de); "english" keeps A.3's printed "in English" in every direction, which an x-x
# item contradicts (its answer is copied from a German context).
ANSWER_LANGUAGES = ("named", "english")


@dataclass(frozen=True)
class Layout:
    """The prompt-text choices of the protocol switches (docs/configuration.md, "Protocol")."""

    layout: str = "paper"
    answer_cue: str = "none"
    answer_language: str = "named"
    system_prompt: str | None = None  # base models: the first element; chat models: see `system_message`

    def __post_init__(self) -> None:
        for key, value, allowed in (
            ("layout", self.layout, tuple(LAYOUTS)),
            ("answer_cue", self.answer_cue, ANSWER_CUES),
            ("answer_language", self.answer_language, ANSWER_LANGUAGES),
        ):
            check_choice(f"protocol.{key}", value, allowed)

    @property
    def separator(self) -> str:
        return LAYOUTS[self.layout]


PAPER_LAYOUT = Layout()  # the literal print of A.3
# Before the switches: one line break, "Answer:" after a base model's prompt (what the committed real and
# multilingual studies ran with; their configs name it).
COMPACT = Layout(layout="compact", answer_cue="label")


def task_description(prompt_format: str, answer_lang: str, answer_language: str = "named") -> str:
    """v1 opens with the task framing; v2 keeps only the instruction (placed after the question)."""
    instruction = _INSTRUCTION.format(language=LANGUAGE_NAMES["en" if answer_language == "english" else answer_lang])
    if prompt_format == "v1":
        return _INTRO + instruction
    if prompt_format == "v2":
        return instruction
    raise XmrcError(f"unknown prompt format '{prompt_format}' (expected one of {', '.join(FORMATS)})")


@dataclass(frozen=True)
class Example:
    context: str
    question: str
    answer: str = ""


@dataclass
class Prompt:
    text: str
    spans: dict[str, tuple[int, int]] = field(default_factory=dict)


class _Builder:
    """Appends elements and remembers where each named part starts and ends."""

    def __init__(self, separator: str = "\n") -> None:
        self.separator = separator
        self.lines: list[str] = []
        self.length = 0
        self.spans: dict[str, tuple[int, int]] = {}

    @property
    def next_start(self) -> int:
        """Where the next element will start: after the separator that joins it to the previous one."""
        return self.length + (len(self.separator) if self.lines else 0)

    def add(self, text: str, part: str | None = None, prefix: str = "") -> None:
        self.length = self.next_start  # the separator that joins it to the previous element
        start = self.length + len(prefix)
        self.lines.append(prefix + text)
        self.length += len(prefix) + len(text)
        if part:
            self.spans[part] = (start, self.length)

    def extend_span(self, part: str, start: int) -> None:
        self.spans[part] = (start, self.length)

    def text(self) -> str:
        return self.separator.join(self.lines)


def build_body(
    test: Example,
    demonstrations: Iterable[Example],
    prompt_format: str,
    answer_lang: str,
    base_model: bool,
    layout: Layout = PAPER_LAYOUT,
) -> Prompt:
    """The prompt text before any chat template. A base model's text opens with the system prompt, if any, and
    ends with "Answer:" under answer_cue "label"; a chat model's system prompt goes to its template."""
    description = task_description(prompt_format, answer_lang, layout.answer_language)
    builder = _Builder(layout.separator)
    if base_model and layout.system_prompt:
        builder.add(layout.system_prompt)
    if prompt_format == "v1":
        builder.add(description, "task_description")
    demonstrations = list(demonstrations)
    if demonstrations:
        start = builder.next_start  # the separator (one or two line breaks) belongs to no part
        for demo in demonstrations:
            builder.add(demo.context, prefix="Context: ")
            builder.add(demo.question, prefix="Question: ")
            builder.add(demo.answer, prefix="Answer: ")
        builder.extend_span("demonstrations", start)
    builder.add(TASK_START)
    builder.add(test.context, "context", prefix="Context: ")
    builder.add(test.question, "question", prefix="Question: ")
    if prompt_format == "v2":
        builder.add(description, "task_description")
    if base_model and layout.answer_cue == "label":
        builder.add("Answer:")
    return Prompt(builder.text(), builder.spans)


ChatTemplate = Callable[[str], str]
# An API applies its own chat template to the user message: the prompt goes as it is, marked templated.
API_CHAT_TEMPLATE: ChatTemplate = str


def apply_template(body: Prompt, chat_template: ChatTemplate | None) -> Prompt:
    """Wrap the body as one user turn and shift the spans to where the body sits in the result."""
    if chat_template is None:
        return body
    text = chat_template(body.text)
    offset = text.find(body.text)
    if offset < 0:
        raise XmrcError("the chat template altered the prompt text; part spans cannot be located")
    return Prompt(text, {part: (s + offset, e + offset) for part, (s, e) in body.spans.items()})


def hf_chat_template(tokenizer, system_prompt: str | None = None) -> ChatTemplate:
    """A tokenizer's own chat template, with its default system prompt if it has one; `system_prompt` is sent
    as a system turn only to a template without a default (protocol.system_prompt)."""
    if not getattr(tokenizer, "chat_template", None):
        raise XmrcError(
            f"{tokenizer.name_or_path}: the registry says chat_template: true, but the tokenizer has no chat template"
        )

    def apply(messages: list[dict]) -> str:
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)

    system = (
        [] if system_prompt is None or has_default_system(apply) else [{"role": "system", "content": system_prompt}]
    )

    def render(user_text: str) -> str:
        return apply([*system, {"role": "user", "content": user_text}])

    return render


def has_default_system(apply: Callable[[list[dict]], str]) -> bool:
    """Whether a chat template writes a system turn of its own when given none (SmolLM2, Qwen-2.5, Llama-3.1:
    yes; Mistral, Gemma: no): the user-only rendering then names the system role."""
    return "system" in apply([{"role": "user", "content": "\x00"}]).lower()


# --- Directions over the XQuAD table -------------------------------------------------------------------


@dataclass(frozen=True)
class Direction:
    context_lang: str
    question_lang: str

    @property
    def answer_lang(self) -> str:
        return self.context_lang  # the answer is copied from the context

    @property
    def label(self) -> str:
        return f"{self.context_lang}-{self.question_lang}"


# Which (context, question) pairs a scenario holds: en-x = English context, question in each language (en-en
# included); x-x = monolingual, non-English; x-y = every pair of the configured languages (XQuAD is parallel).
SCENARIOS = ("en-x", "x-x", "x-y")
PAPER_SCENARIOS = ("en-x", "x-x")


def scenario_directions(scenario: str, languages: Iterable[str]) -> list[Direction]:
    languages = list(languages)
    if scenario == "en-x":
        return [Direction("en", x) for x in languages]
    if scenario == "x-x":
        return [Direction(x, x) for x in languages if x != "en"]
    if scenario == "x-y":
        return [Direction(c, q) for c in languages for q in languages]
    raise XmrcError(f"unknown scenario {scenario!r} (expected one of {', '.join(SCENARIOS)})")


def directions(languages: Iterable[str], scenarios: Iterable[str] = PAPER_SCENARIOS) -> list[Direction]:
    """The directions of `scenarios`, each once, in scenario order: en-x for every language (en-en included),
    then x-x for the non-English ones (23 for XQuAD, the paper's), then the other pairs of x-y."""
    languages = list(languages)
    seen: dict[Direction, None] = {}
    for scenario in scenarios:
        for direction in scenario_directions(scenario, languages):
            seen.setdefault(direction, None)
    return list(seen)


def check_shots(shots: int, demonstration_ids: list[str]) -> None:
    """k-shot takes the first k demonstration ids: there must be at least k."""
    if shots < 0:
        raise XmrcError(f"shots: {shots} is negative")
    if shots > len(demonstration_ids):
        raise XmrcError(
            f"demonstrations: {shots}-shot needs at least {shots} demonstration ids, {len(demonstration_ids)} given"
        )


DATA_COLUMNS = ["id", "lang", "context", "question", "answer_text"]  # what prompts read of a data table
PROMPT_COLUMNS = ["id", "context_lang", "question_lang", "answer_lang", "gold", "prompt", "templated"] + [
    f"{part}_{edge}" for part in PARTS for edge in ("start", "end")
]


def _example(by_lang: dict[str, pd.DataFrame], item_id: str, direction: Direction, with_answer: bool) -> Example:
    context_row = by_lang[direction.context_lang].loc[item_id]
    question_row = by_lang[direction.question_lang].loc[item_id]
    # XQuAD questions may end in a space; chat templates that trim the turn (Llama-3) would alter the prompt.
    return Example(
        context_row["context"], question_row["question"].strip(), context_row["answer_text"] if with_answer else ""
    )


def iter_prompts(
    table: pd.DataFrame,
    languages: Iterable[str],
    shots: int,
    prompt_format: str,
    demonstration_ids: list[str],
    chat_template: ChatTemplate | None,
    max_items: int | None = None,
    ids: Iterable[str] | None = None,
    scenarios: Iterable[str] = PAPER_SCENARIOS,
    alignment: str = "parallel",
    demonstration_table: pd.DataFrame | None = None,
    layout: Layout = PAPER_LAYOUT,
) -> Iterator[dict]:
    """One record per (direction of `scenarios`, test item): the prompt, its spans and the gold answer.

    Test items are every id except the demonstrations in the prompt (the first `shots` of `demonstration_ids`:
    none at 0-shot, so 0-shot is scored on all items, as the paper's 0-shot EM values in multiples of 1/1190
    show), in table order, optionally only those in `ids` (e.g. the held-out articles of a finetuned model),
    then optionally the first `max_items`.

    `alignment` "by_direction" (MLQA, xmrc.dataset_registry): a direction's items are the ids its context and
    question languages share, and its demonstrations the first `shots` of `demonstration_ids` that both
    languages have in `demonstration_table` (another split; default: `table`).
    """
    languages = list(languages)
    check_shots(shots, demonstration_ids)
    by_lang = {lang: rows.set_index("id") for lang, rows in table.groupby("lang", sort=False)}
    wanted = set(ids) if ids is not None else None
    if alignment == "by_direction":
        demo_by_lang = (
            by_lang
            if demonstration_table is None
            else {lang: rows.set_index("id") for lang, rows in demonstration_table.groupby("lang", sort=False)}
        )
        direction_select = direction_items(by_lang, demo_by_lang, demonstration_ids, shots, wanted, max_items)
        select = lambda direction: direction_select(direction.context_lang, direction.question_lang)  # noqa: E731
    else:
        english_ids = list(by_lang["en"].index)
        missing = [item for item in demonstration_ids if item not in by_lang["en"].index]
        if missing:
            raise XmrcError(f"demonstrations: id(s) {', '.join(missing)} not in the XQuAD data")
        in_prompt = demonstration_ids[:shots]
        test_ids = [item for item in english_ids if item not in set(in_prompt) and (wanted is None or item in wanted)][
            :max_items
        ]
        select, demo_by_lang = (lambda direction: (in_prompt, test_ids)), by_lang
    for direction in directions(languages, scenarios):
        in_prompt, test_ids = select(direction)
        demos = [_example(demo_by_lang, item, direction, True) for item in in_prompt]
        for item_id in test_ids:
            test = _example(by_lang, item_id, direction, False)
            body = build_body(test, demos, prompt_format, direction.answer_lang, chat_template is None, layout)
            prompt = apply_template(body, chat_template)
            record = {
                "id": item_id,
                "context_lang": direction.context_lang,
                "question_lang": direction.question_lang,
                "answer_lang": direction.answer_lang,
                "gold": by_lang[direction.context_lang].loc[item_id, "answer_text"],
                "prompt": prompt.text,
                "templated": chat_template is not None,
            }
            for part in PARTS:
                start, end = prompt.spans.get(part, (-1, -1))
                record[f"{part}_start"], record[f"{part}_end"] = start, end
            yield record


def read_ids(path: str | Path) -> list[str]:
    """Item ids, one per line (e.g. the held-out articles' items written by finetune-split)."""
    try:
        return Path(path).read_text(encoding="utf-8").split()
    except FileNotFoundError:
        raise XmrcError(f"{path}: id file not found") from None


def build_prompt_table(*args, **kwargs) -> pd.DataFrame:
    return pd.DataFrame(list(iter_prompts(*args, **kwargs)), columns=PROMPT_COLUMNS)
