"""The dataset registry (config/datasets.yaml) and what differs between datasets: where a split's files are,
which items a direction has, and where its demonstrations come from.

XQuAD is parallel (every id in every language; the configured demonstration ids are items of the evaluation
split). MLQA is aligned by direction: an item's id is shared by the languages that have it, so direction
c-q holds the ids of c that q also has, and its demonstrations are validation-split items of both languages.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from xmrc.exceptions import XmrcError
from xmrc.io import read_yaml
from xmrc.validation import validate

# The checkout's registry: rules pass config key `datasets`; commands run by hand find it here by default.
DEFAULT_REGISTRY = Path(__file__).resolve().parents[2] / "config" / "datasets.yaml"
DEFAULT_DATASET = "xquad"
ALIGNMENTS = ("parallel", "by_direction")
# A local file may be shipped compressed: xmrc.data decompresses these in memory.
COMPRESSED_SUFFIXES = (".xz", ".gz")


@dataclass(frozen=True)
class Dataset:
    key: str
    name: str
    hub_id: str
    hub_config: str
    evaluation_split: str
    demonstration_split: str | None
    local_files: dict[str, str]
    languages: tuple[str, ...]
    alignment: str

    def config_name(self, context_lang: str, question_lang: str | None = None) -> str:
        """The hub config of a direction (XQuAD's name only the context language)."""
        return self.hub_config.format(context=context_lang, question=question_lang or context_lang)

    def local_file(self, directory: Path, split: str, lang: str) -> Path:
        """The dataset's own file of one language (context and question in `lang`) of a split: the file as
        named, else the same name compressed (+ .xz, + .gz) where only that exists (the bundled data/xquad)."""
        if split not in self.local_files:
            raise XmrcError(
                f"dataset '{self.key}': no local file name for split '{split}' (registry key '{self.key}.local_files')"
            )
        path = Path(directory) / self.local_files[split].format(context=lang, question=lang)
        if not path.exists():
            for suffix in COMPRESSED_SUFFIXES:
                compressed = path.with_name(path.name + suffix)
                if compressed.exists():
                    return compressed
        return path

    def check_languages(self, languages: Iterable[str], key: str = "languages") -> list[str]:
        languages = list(languages)
        unknown = [lang for lang in languages if lang not in self.languages]
        if unknown:
            raise XmrcError(
                f"config key '{key}': {', '.join(unknown)} not in {self.name} (its languages: "
                f"{', '.join(self.languages)})"
            )
        return languages


def load_registry(path: str | Path = DEFAULT_REGISTRY) -> dict[str, Dataset]:
    entries = validate(read_yaml(path), "datasets.schema.yaml", str(path))
    return {
        key: Dataset(
            key,
            e["name"],
            e["hub_id"],
            e["hub_config"],
            e["splits"]["evaluation"],
            e["splits"]["demonstrations"],
            dict(e["local_files"]),
            tuple(e["languages"]),
            e["alignment"],
        )
        for key, e in entries.items()
    }


def get(key: str, path: str | Path = DEFAULT_REGISTRY) -> Dataset:
    registry = load_registry(path)
    if key not in registry:
        raise XmrcError(f"config key 'data.dataset': unknown dataset '{key}' (in {path}: {', '.join(registry)})")
    return registry[key]


# Stages built on XQuAD's articles and the paper's numbers: other datasets run prompts -> tables -> figures.
XQUAD_ONLY_STAGES = ("errors", "finetune", "oracle", "layers")


def for_config(config: dict) -> Dataset:
    """The dataset a validated run config evaluates (data.dataset in the registry `datasets`), checked against
    the config: its languages, stages that need XQuAD, and a hub id that belongs to another dataset (e.g.
    XQuAD's, inherited from config/config.yaml by a config merged over it)."""
    registry = load_registry(config["datasets"])
    key = config["data"]["dataset"]
    if key not in registry:
        raise XmrcError(
            f"config key 'data.dataset': unknown dataset '{key}' (in {config['datasets']}: {', '.join(registry)})"
        )
    dataset = registry[key]
    dataset.check_languages(config["languages"])
    if dataset.key != "xquad":
        for stage in XQUAD_ONLY_STAGES:
            if config.get(stage, {}).get("enabled"):
                raise XmrcError(
                    f"config key '{stage}.enabled': the {stage} stage needs XQuAD; set it to false "
                    f"for data.dataset '{dataset.key}'"
                )
    hub_id = config["data"].get("hub_id")
    owners = {d.hub_id: d.name for d in registry.values()}
    if config["data"]["source"] == "hub" and hub_id and hub_id != dataset.hub_id and hub_id in owners:
        raise XmrcError(
            f"config key 'data.hub_id': {hub_id} is {owners[hub_id]}'s, but data.dataset is "
            f"'{dataset.key}' (null = {dataset.hub_id})"
        )
    return dataset


# --- Items per direction when they are not parallel -------------------------------------------------------


def shared_ids(by_lang: dict[str, pd.DataFrame], context_lang: str, question_lang: str) -> list[str]:
    """Ids of the context language (in its table order) that the question language has as well."""
    question_ids = set(by_lang[question_lang].index)
    return [item for item in by_lang[context_lang].index if item in question_ids]


def direction_demonstrations(
    demo_by_lang: dict[str, pd.DataFrame],
    context_lang: str,
    question_lang: str,
    candidates: list[str],
    shots: int,
    split: str,
) -> list[str]:
    """The first `shots` configured demonstration ids that both languages of the direction have."""
    if shots == 0:
        return []
    usable = set(shared_ids(demo_by_lang, context_lang, question_lang))
    chosen = [item for item in candidates if item in usable][:shots]
    if len(chosen) < shots:
        raise XmrcError(
            f"config key 'demonstrations': {len(chosen)} of its ids are {split} items of both "
            f"{context_lang} and {question_lang}; {shots}-shot needs {shots}"
        )
    return chosen


def direction_test_ids(
    by_lang: dict[str, pd.DataFrame],
    context_lang: str,
    question_lang: str,
    in_prompt: Iterable[str],
    wanted: set[str] | None,
    max_items: int | None,
) -> list[str]:
    """The direction's items, less the demonstrations in its prompt, optionally only `wanted`, first max_items."""
    excluded = set(in_prompt)
    return [
        item
        for item in shared_ids(by_lang, context_lang, question_lang)
        if item not in excluded and (wanted is None or item in wanted)
    ][:max_items]


def direction_items(
    by_lang: dict[str, pd.DataFrame],
    demo_by_lang: dict[str, pd.DataFrame],
    demonstration_ids: list[str],
    shots: int,
    wanted: set[str] | None,
    max_items: int | None,
):
    """For items aligned by direction: (context, question) -> (demonstration ids, test ids) of that direction."""
    split = "evaluation" if demo_by_lang is by_lang else "demonstration"

    def select(context_lang: str, question_lang: str) -> tuple[list[str], list[str]]:
        in_prompt = direction_demonstrations(
            demo_by_lang, context_lang, question_lang, demonstration_ids, shots, f"{split}-split"
        )
        return in_prompt, direction_test_ids(by_lang, context_lang, question_lang, in_prompt, wanted, max_items)

    return select
