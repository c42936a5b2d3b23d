"""Run configuration and model registry: loaded from YAML, validated by JSON schema, defaults filled in.

Every validation problem becomes one XmrcError line that names the file and the offending key; the checks
across keys (a stage's models, shots and directions against the run's) are `validate_run`, which also derives
what the workflow's rules need (`RunPlan`).
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from xmrc import dataset_registry
from xmrc.dataset_registry import Dataset
from xmrc.exceptions import XmrcError
from xmrc.io import read_yaml
from xmrc.prompts import directions
from xmrc.tables import table_scenarios
from xmrc.validation import _schema, validate


def load_config(path: str | Path) -> dict:
    return validate_config(read_yaml(path), str(path))


def validate_config(config: Any, source: str = "config", overrides: Mapping | None = None) -> dict:
    """The config, schema-valid with defaults filled in. `overrides` are the command line's `--config` values
    (Snakemake's `workflow.config_settings.config`), already merged into `config`: the values at their keys
    are first coerced to the schema's types (see coerce_overrides)."""
    if not isinstance(config, dict):
        raise XmrcError(f"{source}: expected a mapping of config keys")
    if overrides:
        coerce_overrides(config, overrides)
    config = validate(config, "config.schema.yaml", source)
    if config["data"]["source"] == "local" and not config["data"].get("local_dir"):
        raise XmrcError(f"{source}: key 'data.local_dir': required when data.source is 'local'")
    most = max(config["shots"])
    if most > len(config["demonstrations"]):
        raise XmrcError(
            f"{source}: key 'demonstrations': {most}-shot (key 'shots') needs at least {most} "
            f"demonstration ids, {len(config['demonstrations'])} configured"
        )
    return config


def coerce_overrides(config: dict, overrides: Mapping) -> dict:
    """Give the command line's `--config` values the types the config schema declares, in place.

    Snakemake parses a `--config key=value` value with YAML's BaseLoader unless it is a plain int, float or
    True/False, so every value inside a list or mapping is a string (`shots=[0,5]` is ['0', '5'],
    `intervals={"enabled": true}` is {'enabled': 'true'}); a mapping is merged key by key into the config's
    section, a list or scalar replaces the key's value. At every key `overrides` names, a string where the
    schema (its sub-schemas, `$ref`s, `oneOf`/`anyOf`/`allOf` branches and `enum`/`const` values included)
    admits no string is read as YAML, as a config file is (safe loader; any number also as a float, e.g.
    1e-5), and replaced when the result has a type the schema declares: integer, number, boolean, null, or
    an array or object whose items are coerced in turn. A string the schema admits, a value of any other type
    and a string that cannot be read as a declared type are left as they are, so validation names the key.
    """
    schema = _schema("config.schema.yaml")
    _coerce_at(config, overrides, [(schema, "")], _SchemaFiles(schema))
    return config


class _SchemaFiles:
    """The documents `$ref`s point into: the merged config schema ('') and files of xmrc/schemas."""

    def __init__(self, root: dict):
        self.documents: dict[str, Any] = {"": root}

    def get(self, name: str) -> Any:
        if name not in self.documents:
            try:
                text = resources.files("xmrc").joinpath("schemas", name).read_text(encoding="utf-8")
                self.documents[name] = yaml.safe_load(text)
            except (OSError, yaml.YAMLError):
                self.documents[name] = {}
        return self.documents[name]


def _resolve(schema: Any, document: str, files: _SchemaFiles, seen: frozenset = frozenset()) -> tuple[dict, str]:
    """`schema` with its `$ref` followed (into this or another file of xmrc/schemas; siblings kept), and the
    document it lives in; an unresolvable reference is an empty schema (no coercion)."""
    if not isinstance(schema, dict):
        return {}, document
    ref = schema.get("$ref")
    if not isinstance(ref, str) or (document, ref) in seen:
        return schema, document
    name, _, pointer = ref.partition("#")
    target_document = name or document
    target: Any = files.get(target_document)
    for part in [p for p in pointer.split("/") if p]:
        part = part.replace("~1", "/").replace("~0", "~")
        if isinstance(target, dict) and part in target:
            target = target[part]
        elif isinstance(target, list) and part.isdigit() and int(part) < len(target):
            target = target[int(part)]
        else:
            return {}, document
    target, target_document = _resolve(target, target_document, files, seen | {(document, ref)})
    siblings = {key: value for key, value in schema.items() if key != "$ref"}
    if not siblings:
        return target, target_document
    return {"allOf": [dict(siblings, **{"$document": document}), dict(target, **{"$document": target_document})]}, ""


def _branches(schema: Any, document: str, files: _SchemaFiles) -> list[tuple[dict, str]]:
    """The schema and every schema of its `allOf`/`anyOf`/`oneOf` (recursively), each with its document."""
    schema, document = _resolve(schema, document, files)
    document = schema.get("$document", document)
    found = [(schema, document)]
    for keyword in ("allOf", "anyOf", "oneOf"):
        for branch in schema.get(keyword, []):
            found.extend(_branches(branch, document, files))
    return found


_JSON_TYPES = {bool: "boolean", type(None): "null", str: "string", int: "integer", float: "number"}


def _declared_types(schema: Any, document: str, files: _SchemaFiles) -> set[str] | None:
    """The JSON types a value may have (`type`, or the types of `enum`/`const` values); None when nothing is
    declared. `anyOf`/`oneOf` branches add theirs, `allOf` branches narrow them."""
    schema, document = _resolve(schema, document, files)
    document = schema.get("$document", document)
    own: set[str] | None = None
    if "type" in schema:
        own = {schema["type"]} if isinstance(schema["type"], str) else set(schema["type"])
    elif "const" in schema or "enum" in schema:
        values = [schema["const"]] if "const" in schema else list(schema["enum"])
        own = {_JSON_TYPES.get(type(value), "array" if isinstance(value, list) else "object") for value in values}
    for keyword in ("anyOf", "oneOf"):
        if keyword in schema:
            union: set[str] | None = set()
            for branch in schema[keyword]:
                types = _declared_types(branch, document, files)
                if types is None:
                    union = None
                    break
                union |= types
            if union is not None:
                own = union if own is None else _widened(own) & _widened(union)
    for branch in schema.get("allOf", []):
        types = _declared_types(branch, document, files)
        if types is not None:
            own = types if own is None else _widened(own) & _widened(types)
    return own


def _widened(types: set[str]) -> set[str]:
    """`types` with the integers that 'number' admits (so that intersections keep them)."""
    return types | {"integer"} if "number" in types else types


def _has_type(value: Any, types: set[str]) -> bool:
    if isinstance(value, bool):
        return "boolean" in types
    if isinstance(value, int):
        return bool(types & {"integer", "number"})
    if isinstance(value, float):
        return "number" in types and math.isfinite(value)
    return (
        (value is None and "null" in types)
        or (isinstance(value, str) and "string" in types)
        or (isinstance(value, list) and "array" in types)
        or (isinstance(value, dict) and "object" in types)
    )


def _parsed(text: str, types: set[str]) -> Any:
    """`text` read as YAML (or as a float), when that gives a value of one of `types`; else `text`."""
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        value = text
    if not _has_type(value, types) and "number" in types:
        with contextlib.suppress(ValueError):
            value = float(text)
    return value if not isinstance(value, str) and _has_type(value, types) else text


def _member_schemas(schema: Any, document: str, files: _SchemaFiles, key: str | int) -> list[tuple[dict, str]]:
    """The schemas of an object's property `key` (str) or an array's item number `key` (int)."""
    found = []
    for branch, where in _branches(schema, document, files):
        if isinstance(key, int):
            prefix = branch.get("prefixItems", [])
            item = prefix[key] if key < len(prefix) else branch.get("items")
        elif key in branch.get("properties", {}):
            item = branch["properties"][key]
        else:
            patterns = branch.get("patternProperties", {})
            matched = [sub for pattern, sub in patterns.items() if re.search(pattern, key)]
            found.extend((sub, where) for sub in matched)
            item = branch.get("additionalProperties") if not matched else None
        if isinstance(item, dict):
            found.append((item, where))
    return found


def _coerce_value(value: Any, candidates: list[tuple[dict, str]], files: _SchemaFiles) -> Any:
    """`value` coerced to what any of the `candidates` (schema, document) declares; lists and mappings are
    new ones (Snakemake's own copy of the command line's values stays as it was)."""
    if not candidates:
        return value
    if isinstance(value, str):
        types: set[str] = set()
        for schema, document in candidates:
            declared = _declared_types(schema, document, files)
            if declared is None:
                return value  # any type is fine
            types |= declared
        if "string" in types:
            return value
        value = _parsed(value, types)
    if isinstance(value, dict):
        return {key: _coerce_value(item, _members(candidates, files, str(key)), files) for key, item in value.items()}
    if isinstance(value, list):
        return [_coerce_value(item, _members(candidates, files, number), files) for number, item in enumerate(value)]
    return value


def _members(candidates: list[tuple[dict, str]], files: _SchemaFiles, key: str | int) -> list[tuple[dict, str]]:
    return [member for schema, document in candidates for member in _member_schemas(schema, document, files, key)]


def _coerce_at(config: dict, overrides: Mapping, candidates: list[tuple[dict, str]], files: _SchemaFiles) -> None:
    """Coerce the values of `config` (whose schemas are `candidates`) at the keys `overrides` names, into the
    sections Snakemake merged key by key."""
    for key, override in overrides.items():
        if key not in config:
            continue
        members = _members(candidates, files, key)
        if isinstance(override, Mapping) and isinstance(config[key], dict):
            _coerce_at(config[key], override, members, files)
        else:
            config[key] = _coerce_value(config[key], members, files)


# Snapshots converted from weights that a Python package ships (source: gguf).
PACKAGED_DIR = "resources/packaged"
# Sources whose weights are a directory on disk (built, trained, converted or given), never a hub id.
DIRECTORY_SOURCES = ("tiny", "finetune", "local", "gguf")


@dataclass(frozen=True)
class Model:
    key: str
    name: str
    family: str
    mode: str
    chat_template: bool
    gpus: int
    backend: str
    source: str = "hub"
    hub_id: str | None = None
    revision: str | None = None
    path: str | None = None
    tiny: dict | None = None
    size_b: float | None = None
    api_provider: str | None = None
    main: bool = False
    gated: bool = False
    finetune: dict | None = None  # source: finetune: how it is trained (see models.schema.yaml)
    gguf: dict | None = None  # source: gguf: the package, version and file that ship the weights
    mem_gb: float | None = None
    runtime_min: int | None = None
    paper_name: str | None = None  # the row name in the paper's tables; None: the paper does not report it


class Registry:
    def __init__(self, entries: dict[str, dict], source: str = "registry"):
        self.source = source
        self.models = {key: Model(key=key, **entry) for key, entry in entries.items()}
        self._by_name = {model.name: model for model in self.models.values()}

    @classmethod
    def load(cls, path: str | Path) -> Registry:
        return cls.from_entries(read_yaml(path), str(path))

    @classmethod
    def from_entries(cls, entries: Any, source: str) -> Registry:
        """A registry from the parsed YAML of a registry file (`source`, named in errors), validated."""
        return cls(validate(entries if entries is not None else {}, "models.schema.yaml", source), source)

    def get(self, key_or_name: str) -> Model:
        model = self.models.get(key_or_name) or self._by_name.get(key_or_name)
        if model is None:
            raise XmrcError(
                f"unknown model '{key_or_name}': not in {self.source} "
                f"(add an entry there, or use one of its {len(self.models)} keys)"
            )
        return model

    def select(self, selection: str | list[str]) -> list[Model]:
        """The models a config's `models:` key names: 'main', 'full' (every model of the paper), or a list."""
        if selection == "main":
            return [m for m in self.models.values() if m.main]
        if selection == "full":
            # Our own finetunes other than the paper's (question-translation LoRAs, tiny ones) are opt-in.
            return [
                m
                for m in self.models.values()
                if m.source not in ("tiny", "gguf") and not (m.source == "finetune" and not m.main)
            ]
        return [self.get(item) for item in selection]


@dataclass(frozen=True)
class TableRows:
    """Which models a run evaluates in each shots setting and which tables list them (config keys `models`,
    `extra_models`, `skip_models`): `models` are the rows of every table, summaries included; `extra` are rows
    of the per-language and error tables but not of the summary tables; `skipped` maps a shots setting to
    the keys not evaluated there (no generation job, no row)."""

    models: dict[str, Model]
    extra: dict[str, Model]
    skipped: dict[int, frozenset[str]]

    @property
    def all(self) -> dict[str, Model]:
        return {**self.models, **self.extra}

    def evaluated(self, shots: int) -> list[str]:
        """Keys of the models evaluated at `shots`, in config order (`models`, then `extra_models`)."""
        return [key for key in self.all if key not in self.skipped.get(shots, frozenset())]


def _registry_model(registry: Registry, item: str, key: str) -> Model:
    """A model a config key names; an unknown one names the key."""
    try:
        return registry.get(item)
    except XmrcError as error:
        raise XmrcError(f"config key '{key}': {error}") from None


def table_rows(config: dict, registry: Registry) -> TableRows:
    """The run's TableRows from a validated config; unknown models name the config key. An extra model that
    is already in `models` is a row of every table; a skip of a model or setting the run does not have is a
    no-op (so overriding `models` or `shots` of the paper config needs no edit of these keys)."""
    try:
        models = {model.key: model for model in registry.select(config["models"])}
    except XmrcError as error:
        raise XmrcError(f"config key 'models': {error}") from None
    extra = {}
    for number, item in enumerate(config.get("extra_models", [])):
        model = _registry_model(registry, item, f"extra_models[{number}]")
        if model.key not in models:
            extra[model.key] = model
    skipped: dict[int, set[str]] = {}
    for number, entry in enumerate(config.get("skip_models", [])):
        for item in entry["models"]:
            model = _registry_model(registry, item, f"skip_models[{number}].models")
            skipped.setdefault(entry["shots"], set()).add(model.key)
    rows = TableRows(models, extra, {shots: frozenset(keys) for shots, keys in skipped.items()})
    for shots in config["shots"]:
        if not rows.evaluated(shots):
            raise XmrcError(f"config key 'skip_models': no model is left to evaluate at {shots}-shot")
    return rows


@dataclass(frozen=True)
class RunPlan:
    """What the rules derive from a checked run config (see validate_run)."""

    rows: TableRows
    analysis_only: dict[str, Model]  # models of the layer analysis that are no table row
    dataset: Dataset
    settings: list[tuple[int, str]]  # (shots, prompt format) of the run
    scenarios: list[str]  # the per-language tables: en-x and x-x where the run has them, x-y beyond the paper's
    errors_judge: Model
    oracle_models: list[str]
    oracle_question_languages: list[str]
    layer_models: list[str]
    layer_settings: list[tuple[int, str]]
    layer_series: dict[str, list[str]]  # layers.change_sets whose members are all analysed
    tuned: dict[str, Model]  # the run's finetuned models
    finetune_compared: list[str]  # tuned models whose base is evaluated too
    finetune_heldout_bases: list[str]  # bases of compared question-translation models
    finetune_compare_shots: list[int]
    uses_vllm_python: bool  # a job runs under backends.vllm.python: local generation on vLLM, or the vLLM judge

    @property
    def models(self) -> dict[str, Model]:
        """Every model the run evaluates."""
        return {**self.rows.all, **self.analysis_only}


def validate_run(config: dict, registry: Registry) -> RunPlan:
    """Every check of a schema-valid config's keys against each other and the registry, in the order the
    stages are planned; the first problem is one XmrcError naming the config key."""
    rows = table_rows(config, registry)
    analysis_only = _analysis_only_models(config, registry, rows)
    models = {**rows.all, **analysis_only}
    dataset = dataset_registry.for_config(config)
    settings = [(shots, fmt) for shots in config["shots"] for fmt in config["prompt_formats"]]
    scenarios = table_scenarios(
        (d.context_lang, d.question_lang) for d in directions(config["languages"], config["scenarios"])
    )
    judge = _errors_judge(config, registry, models, scenarios)
    tuned = {key: model for key, model in models.items() if model.source == "finetune"}
    compared = _finetune_compared(tuned, registry, models)
    oracle_models, oracle_languages = _oracle(config, registry, rows, scenarios)
    layer_models, layer_settings, layer_series = _layers(config, registry, settings, scenarios)
    vllm_generation = config["backends"]["local"] == "vllm" and any(m.backend == "local" for m in models.values())
    vllm_judge = config["errors"]["enabled"] and config["errors"]["judge_backend"] == "vllm"
    return RunPlan(
        rows=rows,
        analysis_only=analysis_only,
        dataset=dataset,
        settings=settings,
        scenarios=scenarios,
        errors_judge=judge,
        oracle_models=oracle_models,
        oracle_question_languages=oracle_languages,
        layer_models=layer_models,
        layer_settings=layer_settings,
        layer_series=layer_series,
        tuned=tuned,
        finetune_compared=compared,
        finetune_heldout_bases=sorted(
            {
                registry.get(tuned[key].finetune["base"]).key
                for key in compared
                if tuned[key].finetune["dataset"] == "question_translation"
            }
        ),
        finetune_compare_shots=_finetune_compare_shots(config, registry, rows, tuned, compared),
        uses_vllm_python=vllm_generation or vllm_judge,
    )


def _analysis_only_models(config: dict, registry: Registry, rows: TableRows) -> dict[str, Model]:
    """Models the layer analysis names that are not among the table rows (`models`, `extra_models`): they are
    evaluated in the analysis settings only, for their per-item F1, and stay out of every table."""
    if not config["layers"]["enabled"]:
        return {}
    extra = {}
    for item in config["layers"]["models"]:
        model = _registry_model(registry, item, "layers.models")
        if model.key not in rows.all:
            extra[model.key] = model
    return extra


def _errors_judge(config: dict, registry: Registry, models: dict[str, Model], scenarios: list[str]) -> Model:
    """The error stage's judge, looked up even when the stage is off (the rules name its weights either way),
    and the stage's setting checked against the run's."""
    errors = config["errors"]
    judge = _registry_model(registry, errors["judge_model"], "errors.judge_model")
    if not errors["enabled"]:
        return judge
    if judge.source == "tiny" and judge.key not in models:
        raise XmrcError(
            f"config key 'errors.judge_model': tiny model '{judge.key}' is built only when it is one "
            "of the run's `models:`; add it there or pick another judge"
        )
    if errors["shots"] not in config["shots"]:
        raise XmrcError(f"config key 'errors.shots': {errors['shots']} is not among the run's shots {config['shots']}")
    if errors["scenario"] not in scenarios:
        raise XmrcError(
            f"config key 'errors.scenario': the run has no {errors['scenario']} directions "
            f"(config key 'scenarios': {config['scenarios']})"
        )
    if errors["prompt_format"] not in ("best", *config["prompt_formats"]):
        raise XmrcError(
            f"config key 'errors.prompt_format': {errors['prompt_format']} is not among the run's "
            f"prompt_formats {config['prompt_formats']}"
        )
    return judge


def _finetune_compared(tuned: dict[str, Model], registry: Registry, models: dict[str, Model]) -> list[str]:
    """The tuned models compared with their base: those whose base the run evaluates. A tiny base is built
    only when it is one of the run's models."""
    for key, model in tuned.items():
        base = registry.get(model.finetune["base"])
        if base.source == "tiny" and base.key not in models:
            raise XmrcError(
                f"config key 'models': model '{key}': its base '{base.key}' is a tiny model; add it "
                "to `models:` so it is built"
            )
    return [key for key, model in tuned.items() if registry.get(model.finetune["base"]).key in models]


def _finetune_compare_shots(
    config: dict, registry: Registry, rows: TableRows, tuned: dict[str, Model], compared: list[str]
) -> list[int]:
    """Shots settings where every compared tuned model and its base are evaluated (the held-out rule evaluates
    a question-translation model's base in every setting). The paper compares at 2-shot only (Table 10): its
    0-shot Table 5 has no LLaMA-3.1-Tuned-8B ('skip_models')."""

    def evaluated(key: str, shots: int) -> bool:
        model = tuned[key]
        return key in rows.evaluated(shots) and (
            model.finetune["dataset"] == "question_translation"
            or registry.get(model.finetune["base"]).key in rows.evaluated(shots)
        )

    return [shots for shots in config["shots"] if all(evaluated(key, shots) for key in compared)]


def _oracle(config: dict, registry: Registry, rows: TableRows, scenarios: list[str]) -> tuple[list[str], list[str]]:
    """The oracle's models and question languages. Its models need their generations and the format the summary
    table chose for them; its directions are en-x ones of the run's languages."""
    oracle = config["oracle"]
    if not oracle["enabled"]:
        return [], []
    keys = [_registry_model(registry, item, "oracle.models").key for item in oracle["models"]]
    absent = [key for key in keys if key not in rows.models or key not in rows.evaluated(oracle["shots"])]
    if absent:
        raise XmrcError(
            f"config key 'oracle.models': {', '.join(absent)} not in 'models' or skipped at "
            f"{oracle['shots']}-shot ('skip_models'): the oracle needs their generations and "
            "summary row"
        )
    languages = [direction.split("-", 1)[1] for direction in oracle["directions"]]
    absent = [lang for lang in languages if lang not in config["languages"]]
    if absent:
        raise XmrcError(f"config key 'oracle.directions': language(s) {', '.join(absent)} not in 'languages'")
    if "en-x" not in scenarios:
        raise XmrcError(
            f"config key 'oracle.directions': the run has no en-x directions (config key "
            f"'scenarios': {config['scenarios']})"
        )
    if oracle["shots"] not in config["shots"]:
        raise XmrcError(f"config key 'oracle.shots': {oracle['shots']} not in 'shots' {config['shots']}")
    return keys, languages


def _layers(
    config: dict, registry: Registry, run_settings: list[tuple[int, str]], scenarios: list[str]
) -> tuple[list[str], list[tuple[int, str]], dict[str, list[str]]]:
    """The analysed models, their settings and the change series. The sample groups are drawn from the en-x
    directions, in settings the run evaluates; a setting's format `best` is each model's format chosen by
    the tables' criterion among the run's formats (decided at run time)."""
    layers = config["layers"]
    models = [registry.get(item).key for item in layers["models"]] if layers["enabled"] else []
    settings = [(layers["shots"], fmt) for fmt in layers["prompt_formats"]]
    run_shots = {shots for shots, _ in run_settings}
    if models and any(
        shots not in run_shots if fmt == "best" else (shots, fmt) not in run_settings for shots, fmt in settings
    ):
        raise XmrcError("config key 'layers': shots/prompt_formats must be among the run's shots and prompt_formats")
    if models and "en-x" not in scenarios:
        raise XmrcError(
            f"config key 'layers': the run has no en-x directions (config key 'scenarios': {config['scenarios']})"
        )
    series = {}
    for name, members in layers["change_sets"].items():
        keys = [_registry_model(registry, item, f"layers.change_sets.{name}").key for item in members]
        if all(key in models for key in keys):
            series[name] = keys
    return models, settings, series


def model_weights(
    model: Model,
    tiny_dir: str | Path = "resources/tiny_models",
    finetune_dir: str | Path = "resources/finetuned",
    packaged_dir: str | Path = PACKAGED_DIR,
) -> str:
    """What `from_pretrained` receives for a local model: hub id or a directory."""
    if model.source == "hub":
        return model.hub_id
    if model.source == "local":
        return model.path
    if model.source == "tiny":
        return str(Path(tiny_dir) / model.key)
    if model.source == "gguf":
        return str(Path(packaged_dir) / model.key)
    return str(Path(finetune_dir) / model.key)


def check_interpreter(python: str, key: str, resolved_by_job: bool = False, base: str | Path = ".") -> str:
    """A configured interpreter (e.g. `backends.vllm.python`), checked when the DAG is built: a path (anything
    with a '/', relative to `base`, the workflow's working directory) must be an executable file; a bare
    command name must be on PATH, unless the job's own environment resolves it (`resolved_by_job`: Snakemake's
    --sdm conda, where `python` is the rule's conda environment's). Raises XmrcError naming the key."""
    if "/" in python:
        path = Path(python) if Path(python).is_absolute() else Path(base) / python
        if not path.is_file():
            raise XmrcError(
                f"config key '{key}': {python} does not exist (build the environment, e.g. "
                "`make vllm-env`, or set the key to an existing interpreter)"
            )
        if not os.access(path, os.X_OK):
            raise XmrcError(f"config key '{key}': {python} is not executable")
    elif not resolved_by_job and shutil.which(python) is None:
        raise XmrcError(
            f"config key '{key}': command {python!r} is not on PATH (give the interpreter's path, or "
            "run with --sdm conda)"
        )
    return python
