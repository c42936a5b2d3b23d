import pandas as pd
import pytest
import yaml

from helpers import PUBLISHED_TABLES, ROOT
from xmrc import LANGUAGES
from xmrc.config import Registry, load_config, model_weights, table_rows, validate_config, validate_run
from xmrc.exceptions import XmrcError


def paper_config() -> dict:
    return yaml.safe_load((ROOT / "config/config.yaml").read_text())


@pytest.fixture(scope="module")
def registry() -> Registry:
    return Registry.load(ROOT / "config/models.yaml")


def test_paper_config_is_the_full_grid(registry):
    config = load_config(ROOT / "config/config.yaml")
    assert config["languages"] == list(LANGUAGES)
    assert config["shots"] == [0, 2] and config["prompt_formats"] == ["v1", "v2"]
    models = registry.select(config["models"])
    assert len(models) == 18
    assert {m.name for m in models} >= {"LLaMA-3.1-8B", "LLaMA-3.1-Tuned-8B", "GPT-4o", "DeepSeek-V3"}


def paper_rows(name: str) -> set[str]:
    return set(pd.read_csv(PUBLISHED_TABLES / f"{name}.csv")["model"])


def test_paper_config_evaluates_each_setting_for_the_rows_of_the_papers_tables(registry):
    rows = table_rows(load_config(ROOT / "config/config.yaml"), registry)
    names = {key: model.name for key, model in rows.all.items()}
    zero_shot, two_shot = ({names[key] for key in rows.evaluated(shots)} for shots in (0, 2))
    summary = {names[key] for key in rows.evaluated(2) if key in rows.models}
    assert summary == paper_rows("table2_2shot_summary")  # the main list, no LLaMA-2-Chat-7B
    for table in ("table5a_0shot_em_en-x", "table5b_0shot_f1_en-x", "table5c_0shot_em_x-x", "table5d_0shot_f1_x-x"):
        assert zero_shot == paper_rows(table)  # LLaMA-2-Chat-7B in; no Tuned, no DeepSeek-V3 job
    # 2-shot: every row of Tables 6-10 is generated; the per-language tables hold the rest too
    for table, more in [
        ("table6a_2shot_f1_en-x", {"LLaMA-3.1-Tuned-8B", "DeepSeek-V3", "LLaMA-2-Chat-7B"}),
        ("table7_2shot_language_error_en-x", {"LLaMA-3.1-Tuned-8B", "DeepSeek-V3"}),
        ("table8_2shot_generation_failure_en-x", {"LLaMA-3.1-Tuned-8B", "DeepSeek-V3"}),
        ("table9a_2shot_gibberish_en-x", {"LLaMA-3.1-Tuned-8B", "DeepSeek-V3"}),
        ("table10a_2shot_f1_en-x_tuned", two_shot - {"LLaMA-3.1-Tuned-8B"}),
    ]:
        assert two_shot - paper_rows(table) == more, table
    assert rows.extra.keys() == {"llama-2-chat-7b"} and len(two_shot) == 19


def test_overriding_models_or_shots_of_the_paper_config_keeps_its_row_keys_valid(registry):
    config = validate_config(dict(paper_config(), models=["gpt-4o", "llama-2-chat-7b"], shots=[2]))
    rows = table_rows(config, registry)
    # LLaMA-2-Chat-7B in `models` is a row of every table; the 0-shot skip does nothing without 0-shot
    assert list(rows.models) == ["gpt-4o", "llama-2-chat-7b"] and not rows.extra
    assert rows.evaluated(2) == ["gpt-4o", "llama-2-chat-7b"]


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda c: c.update(extra_models=["llama-9"]), "config key 'extra_models[0]': unknown model 'llama-9'"),
        (
            lambda c: c.update(skip_models=[{"shots": 0, "models": ["llama-3.1-70b-instruct"]}]),
            "config key 'skip_models[0].models': unknown model",
        ),
        (
            lambda c: c.update(models=["gpt-4o"], extra_models=[], skip_models=[{"shots": 0, "models": ["gpt-4o"]}]),
            "config key 'skip_models': no model is left to evaluate at 0-shot",
        ),
    ],
)
def test_bad_table_rows_name_the_key(registry, change, message):
    config = paper_config()
    change(config)
    with pytest.raises(XmrcError) as raised:
        table_rows(validate_config(config), registry)
    assert str(raised.value).startswith(message)


def test_registry_holds_table4_and_main_list(registry):
    full = registry.select("full")
    assert len(full) == 42  # 18 main + 24 of Table 4 only
    names = {m.name for m in full}
    assert {"LLaMA-2-Chat-7B", "LLaMAX-3-Alpaca-8B", "Qwen-1.5-Chat-72B", "Mistral-V0.1-7B"} <= names
    api = [m for m in full if m.backend == "api"]
    assert {m.name for m in api} == {"DeepSeek-V3", "GPT-3.5-Turbo-0125", "GPT-4o"}
    assert all(m.gpus == 0 for m in api)
    assert all(m.gpus > 1 for m in full if m.size_b and 60 <= m.size_b < 100)
    assert all(m.gpus == 1 for m in full if m.backend == "local" and m.size_b and m.size_b <= 16)


def test_models_are_selected_by_key_or_paper_name(registry):
    chosen = registry.select(["qwen-2.5-7b", "LLaMA-3.1-Instruct-8B"])
    assert [m.key for m in chosen] == ["qwen-2.5-7b", "llama-3.1-instruct-8b"]


def test_unknown_model_names_it(registry):
    with pytest.raises(XmrcError, match="unknown model 'llama-9'"):
        registry.select(["llama-9"])


def test_defaults_are_filled():
    config = paper_config()
    del config["generation"], config["scoring"], config["tables"]
    config = validate_config(config)
    assert config["generation"]["max_new_tokens"] == 64
    assert config["scoring"]["normalization"] == "mlqa"
    assert config["tables"]["format_criterion"] == "en-x"  # the paper's xMRC performance
    assert config["tables"]["format_choice"] == "per_shots" and config["tables"]["paper_rows"] is False


def test_the_format_choice_names_its_values_and_the_paper_config_keeps_the_papers_rows():
    config = paper_config()
    assert config["tables"] == {"format_criterion": "en-x", "format_choice": "per_shots", "paper_rows": True}
    config["tables"]["format_choice"] = "per_run"
    with pytest.raises(XmrcError) as raised:
        validate_config(config, "config (config/config.yaml)")
    assert str(raised.value) == (
        "config (config/config.yaml): key 'tables.format_choice': 'per_run' is not one of ['per_shots', 'per_model']"
    )
    for small in ("smoke", "mlqa_smoke", "multilingual", "multilingual_xy", "real", "protocol"):
        run = merged(paper_config(), yaml.safe_load((ROOT / f"config/{small}.yaml").read_text()))
        assert validate_config(run)["tables"]["paper_rows"] is False, small  # its models are not the paper's


@pytest.mark.parametrize(
    "change, key",
    [
        (lambda c: c.update(shots=[-1]), "shots[0]"),
        (lambda c: c.update(shots=["2"]), "shots[0]"),
        (lambda c: c.update(scenarios=["y-x"]), "scenarios[0]"),
        (lambda c: c.update(scenarios=[]), "scenarios"),
        (lambda c: c.update(languages=["en", "xx"]), "languages[1]"),
        (lambda c: c.update(languages=["de"]), "languages"),
        (lambda c: c.update(prompt_formats=["v3"]), "prompt_formats[0]"),
        (lambda c: c["data"].update(source="ftp"), "data.source"),
        (lambda c: c["data"].update(colour="red"), "data"),
        (lambda c: c.update(colour="red"), "(top level)"),
        (lambda c: c["generation"].update(batch_size=0), "generation.batch_size"),
        (lambda c: c["tables"].update(format_criterion="x-x"), "tables.format_criterion"),
        (lambda c: c["tables"].update(format_choice="per_run"), "tables.format_choice"),
        (lambda c: c["tables"].update(paper_rows="yes"), "tables.paper_rows"),
        (lambda c: c.update(skip_models=[{"shots": -1, "models": ["gpt-4o"]}]), "skip_models[0].shots"),
        (lambda c: c.update(extra_models="llama-2-chat-7b"), "extra_models"),
        (lambda c: c.update(demonstrations=["only-one"]), "demonstrations"),
        (lambda c: c.pop("run"), "(top level)"),
    ],
)
def test_bad_config_names_the_key(change, key):
    config = paper_config()
    change(config)
    with pytest.raises(XmrcError) as raised:
        validate_config(config, "config/config.yaml")
    message = str(raised.value)
    assert "\n" not in message
    assert message.startswith(f"config/config.yaml: key '{key}'")


def test_any_number_of_shots_needs_as_many_demonstrations():
    five = [f"id{i}" for i in range(5)]
    config = validate_config(dict(paper_config(), shots=[0, 5], demonstrations=five))
    assert config["shots"] == [0, 5] and config["scenarios"] == ["en-x", "x-x"]  # the paper's, by default
    with pytest.raises(XmrcError) as raised:
        validate_config(dict(paper_config(), shots=[6], demonstrations=five), "six.yaml")
    assert str(raised.value) == (
        "six.yaml: key 'demonstrations': 6-shot (key 'shots') needs at least 6 demonstration ids, 5 configured"
    )
    assert validate_config(dict(paper_config(), shots=[0], demonstrations=[]))["demonstrations"] == []


def test_local_source_needs_a_directory():
    config = paper_config()
    config["data"] = {"source": "local"}
    with pytest.raises(XmrcError, match=r"data.local_dir"):
        validate_config(config)


def test_bad_registry_entry_names_the_model(tmp_path):
    path = tmp_path / "models.yaml"
    path.write_text(
        "good-model:\n  name: Good\n  hub_id: org/good\n  family: x\n  mode: base\n"
        "  chat_template: false\n  gpus: 1\n  backend: local\n"
        "bad-model:\n  name: Bad\n  hub_id: org/bad\n  family: x\n  mode: instruct\n"
        "  chat_template: true\n  gpus: 1\n  backend: local\n"
    )
    with pytest.raises(XmrcError, match=r"key 'bad-model.mode': 'instruct' is not one of"):
        Registry.load(path)


def test_missing_and_broken_yaml(tmp_path):
    with pytest.raises(XmrcError, match="file not found"):
        load_config(tmp_path / "nope.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("run: [unclosed\n")
    with pytest.raises(XmrcError, match="not valid YAML"):
        load_config(broken)


def test_weights_location_by_source(registry):
    assert model_weights(registry.get("llama-3.1-8b")) == "meta-llama/Llama-3.1-8B"
    assert model_weights(registry.get("tiny-llama-chat"), "models/tiny") == "models/tiny/tiny-llama-chat"
    assert model_weights(registry.get("llama-3.1-tuned-8b"), finetune_dir="ft") == "ft/llama-3.1-tuned-8b"


def merged(base: dict, change: dict) -> dict:
    """`change` over `base`, sections merged key by key (as Snakemake merges a --configfile over the default)."""
    return {
        **base,
        **{
            key: merged(base.get(key, {}), value) if isinstance(value, dict) else value for key, value in change.items()
        },
    }


def smoke_run(**change) -> dict:
    """The smoke run's config (config/smoke.yaml over config/config.yaml) with `change` merged in, schema-valid."""
    smoke = merged(paper_config(), yaml.safe_load((ROOT / "config/smoke.yaml").read_text()))
    return validate_config(merged(smoke, change))


OFF = {"enabled": False}


def test_smoke_run_plan(registry):
    plan = validate_run(smoke_run(), registry)
    assert list(plan.rows.models) == [
        "tiny-llama-chat",
        "tiny-llama-base",
        "tiny-qwen2-chat",
        "tiny-llama-tulu-sft",
        "tiny-llama-qt-lora",
    ]
    assert plan.models == plan.rows.all and not plan.analysis_only and plan.dataset.key == "xquad"
    assert plan.scenarios == ["en-x", "x-x"] and plan.errors_judge.key == "tiny-qwen2-chat"
    assert plan.oracle_models == ["tiny-llama-chat", "tiny-llama-base"]
    assert plan.oracle_question_languages == ["en", "de", "zh", "ar"]
    assert plan.layer_models == ["tiny-llama-base", "tiny-llama-chat"] and plan.layer_settings == [(2, "v2")]
    assert plan.layer_series == {"tiny-llama": ["tiny-llama-base", "tiny-llama-chat"]}
    assert list(plan.tuned) == plan.finetune_compared == ["tiny-llama-tulu-sft", "tiny-llama-qt-lora"]
    assert plan.finetune_heldout_bases == ["tiny-llama-chat"] and plan.finetune_compare_shots == [2]
    assert not plan.uses_vllm_python


def test_paper_run_plan(registry):
    plan = validate_run(load_config(ROOT / "config/config.yaml"), registry)
    assert len(plan.rows.models) == 18 and list(plan.rows.extra) == ["llama-2-chat-7b"]
    assert plan.errors_judge.key == "qwen-2.5-instruct-72b" and plan.finetune_compare_shots == [2]
    assert len(plan.layer_models) == 6 and plan.layer_settings == [(2, "best"), (2, "v1")]
    assert plan.uses_vllm_python  # generation on vLLM


def test_analysis_only_model_is_evaluated_but_no_row(registry):
    plan = validate_run(smoke_run(models=["tiny-llama-chat", "tiny-qwen2-chat"], oracle=OFF, finetune=OFF), registry)
    assert list(plan.analysis_only) == ["tiny-llama-base"] and "tiny-llama-base" not in plan.rows.all
    assert list(plan.models) == ["tiny-llama-chat", "tiny-qwen2-chat", "tiny-llama-base"]


def test_the_vllm_python_is_used_only_where_a_vllm_job_runs(registry):
    # the hf backend and the hf judge never run it; vLLM generation of a local model or a vLLM judge do
    assert not validate_run(
        smoke_run(backends={"local": "hf"}, errors={"judge_backend": "hf"}), registry
    ).uses_vllm_python
    assert validate_run(smoke_run(backends={"local": "vllm"}), registry).uses_vllm_python
    assert validate_run(smoke_run(errors={"judge_backend": "vllm"}), registry).uses_vllm_python
    assert not validate_run(smoke_run(errors={"judge_backend": "vllm", "enabled": False}), registry).uses_vllm_python


def unknown(item: str, registry: Registry) -> str:
    return (
        f"unknown model '{item}': not in {registry.source} (add an entry there, or use one of its "
        f"{len(registry.models)} keys)"
    )


@pytest.mark.parametrize(
    "change, message",
    [
        ({"models": ["not-a-model"]}, lambda r: f"config key 'models': {unknown('not-a-model', r)}"),
        ({"layers": {"models": ["not-a-model"]}}, lambda r: f"config key 'layers.models': {unknown('not-a-model', r)}"),
        (
            {"errors": {"judge_model": "no-such-judge"}},
            lambda r: f"config key 'errors.judge_model': {unknown('no-such-judge', r)}",
        ),
        (
            {"errors": {"judge_model": "no-such-judge", "enabled": False}},
            lambda r: f"config key 'errors.judge_model': {unknown('no-such-judge', r)}",
        ),
        (
            {"errors": {"judge_model": "tiny-gemma2-chat"}},
            "config key 'errors.judge_model': tiny model 'tiny-gemma2-chat' is built only when it is one of the run's "
            "`models:`; add it there or pick another judge",
        ),
        ({"shots": [0]}, "config key 'errors.shots': 2 is not among the run's shots [0]"),
        (
            {"scenarios": ["x-x"]},
            "config key 'errors.scenario': the run has no en-x directions (config key 'scenarios': ['x-x'])",
        ),
        (
            {"prompt_formats": ["v1"], "errors": {"prompt_format": "v2"}},
            "config key 'errors.prompt_format': v2 is not among the run's prompt_formats ['v1']",
        ),
        (
            {"models": ["tiny-llama-chat", "tiny-llama-tulu-sft"], "layers": OFF, "oracle": OFF, "errors": OFF},
            "config key 'models': model 'tiny-llama-tulu-sft': its base 'tiny-llama-base' is a tiny model; add it to "
            "`models:` so it is built",
        ),
        ({"oracle": {"models": ["not-a-model"]}}, lambda r: f"config key 'oracle.models': {unknown('not-a-model', r)}"),
        (
            {"oracle": {"models": ["tiny-llama-chat", "tiny-llama-tulu-sft"], "shots": 0}},
            "config key 'oracle.models': tiny-llama-tulu-sft not in 'models' or skipped at 0-shot ('skip_models'): the "
            "oracle needs their generations and summary row",
        ),
        (
            {"models": ["tiny-llama-chat", "tiny-qwen2-chat"], "finetune": OFF},
            "config key 'oracle.models': tiny-llama-base not in 'models' or skipped at 2-shot ('skip_models'): the "
            "oracle needs their generations and summary row",
        ),
        (
            {"languages": ["en", "de", "zh"], "oracle": {"directions": ["en-de", "en-ar", "en-th"]}},
            "config key 'oracle.directions': language(s) ar, th not in 'languages'",
        ),
        (
            {"scenarios": ["x-x"], "errors": OFF},
            "config key 'oracle.directions': the run has no en-x directions (config key 'scenarios': ['x-x'])",
        ),
        ({"oracle": {"shots": 5}}, "config key 'oracle.shots': 5 not in 'shots' [0, 2]"),
        (
            {"layers": {"shots": 5}},
            "config key 'layers': shots/prompt_formats must be among the run's shots and prompt_formats",
        ),
        (
            {"prompt_formats": ["v1"], "errors": {"prompt_format": "v1"}},
            "config key 'layers': shots/prompt_formats must be among the run's shots and prompt_formats",
        ),
        (
            {"scenarios": ["x-x"], "errors": OFF, "oracle": OFF},
            "config key 'layers': the run has no en-x directions (config key 'scenarios': ['x-x'])",
        ),
        (
            {"layers": {"change_sets": {"pair": ["tiny-llama-base", "not-a-model"]}}},
            lambda r: f"config key 'layers.change_sets.pair': {unknown('not-a-model', r)}",
        ),
        (
            {"data": {"dataset": "mlqa"}, "languages": ["en", "de"]},
            "config key 'errors.enabled': the errors stage needs XQuAD; set it to false for data.dataset 'mlqa'",
        ),
    ],
)
def test_bad_run_names_the_key(registry, change, message):
    """Each check across keys: one XmrcError line, the bad key first."""
    config = smoke_run(**change)
    with pytest.raises(XmrcError) as raised:
        validate_run(config, registry)
    assert str(raised.value) == (message(registry) if callable(message) else message)


# Command-line overrides: `snakemake --config key=value ...` parsed and merged by Snakemake itself (its
# parse_config and update_config), then validated as the workflow does (validate_config with `overrides`).


def overridden(*entries: str, base: dict | None = None) -> tuple[dict, dict]:
    """The smoke run's config with `--config` entries merged in as Snakemake does, and the parsed entries."""
    from snakemake.cli import parse_config
    from snakemake.utils import update_config

    overrides = parse_config(list(entries))
    config = merged(paper_config(), yaml.safe_load((ROOT / "config/smoke.yaml").read_text())) if base is None else base
    update_config(config, overrides)
    return config, overrides


FIVE_IDS = "demonstrations=[a,b,c,d,e]"


def test_snakemake_gives_command_line_values_as_strings_and_merges_mappings():
    config, overrides = overridden("shots=[0,5]", 'intervals={"enabled": true}', 'data={"max_items": 4}')
    assert overrides == {"shots": ["0", "5"], "intervals": {"enabled": "true"}, "data": {"max_items": "4"}}
    # a mapping is merged into the config's section key by key; a list replaces the value
    smoke = merged(paper_config(), yaml.safe_load((ROOT / "config/smoke.yaml").read_text()))
    assert config["data"] == dict(smoke["data"], max_items="4") and config["shots"] == ["0", "5"]
    with pytest.raises(XmrcError, match=r"^config: key 'shots\[\d\]': '\d' is not of type 'integer'$"):
        validate_config(config)  # without the overrides named, nothing is coerced


@pytest.mark.parametrize(
    "entries, key, expected",
    [
        (("shots=[0,5]", FIVE_IDS), ("shots",), [0, 5]),
        (("shots=[2]",), ("shots",), [2]),
        (('intervals={"enabled": true}',), ("intervals", "enabled"), True),
        (('data={"max_items": 4}',), ("data", "max_items"), 4),
        (('data={"max_items": null}',), ("data", "max_items"), None),
        (('generation={"batch_size": 8}',), ("generation", "batch_size"), 8),
        (('errors={"enabled": false}',), ("errors", "enabled"), False),
        (('errors={"wrong_answer": {"max_score": 0.5}}',), ("errors", "wrong_answer", "max_score"), 0.5),
        (('intervals={"confidence": 0.9, "resamples": 50}',), ("intervals", "confidence"), 0.9),
        (('intervals={"confidence": 0.9, "resamples": 50}',), ("intervals", "resamples"), 50),
        (('finetune={"full": {"learning_rate": 1e-5}}',), ("finetune", "full", "learning_rate"), 1e-5),
        (('finetune={"full": {"max_steps": ~, "bf16": off}}',), ("finetune", "full", "max_steps"), None),
        (('layers={"max_samples": null}',), ("layers", "max_samples"), None),
        (("skip_models=[{shots: 0, models: [tiny-llama-qt-lora]}]",), ("skip_models", 0, "shots"), 0),
        (('oracle={"directions": "[en-en, en-de]"}',), ("oracle", "directions"), ["en-en", "en-de"]),
    ],
)
def test_command_line_overrides_get_the_schemas_types(entries, key, expected):
    config, overrides = overridden(*entries)
    config = validate_config(config, overrides=overrides)
    value = config
    for part in key:
        value = value[part]
    assert value == expected and type(value) is type(expected)


def test_command_line_overrides_keep_the_rest_of_the_section():
    config, overrides = overridden('data={"max_items": 2}', 'generation={"batch_size": 8}')
    config = validate_config(config, overrides=overrides)
    assert config["data"]["source"] == "local" and config["data"]["local_dir"] == "data/xquad_subset"
    assert config["data"]["max_items"] == 2
    assert config["generation"] == {"max_new_tokens": 12, "batch_size": 8, "dtype": "float32", "chunk_size": 64}
    assert overrides == {"data": {"max_items": "2"}, "generation": {"batch_size": "8"}}  # Snakemake's copy unchanged


def test_command_line_overrides_of_the_right_type_are_kept():
    config, overrides = overridden(
        "models=[tiny-llama-chat,tiny-llama-base]",
        "run=smoke-2",
        'data={"hub_id": null, "revision": "2024"}',
        "shots=[2]",
        base=paper_config(),
    )
    config = validate_config(config, overrides=overrides)
    assert config["models"] == ["tiny-llama-chat", "tiny-llama-base"] and config["run"] == "smoke-2"
    # strings where the schema admits a string stay strings (null too: `string or null`)
    assert config["data"]["hub_id"] == "null" and config["data"]["revision"] == "2024"
    # the config file's own values are typed by its YAML loader and never touched
    assert config["generation"]["batch_size"] == 16 and config["demonstrations"] == paper_config()["demonstrations"]


@pytest.mark.parametrize(
    "entry, key, message",
    [
        ("shots=[0,x]", "shots[1]", "'x' is not of type 'integer'"),
        ("shots=[0,2.5]", "shots[1]", "'2.5' is not of type 'integer'"),
        ('intervals={"enabled": maybe}', "intervals.enabled", "'maybe' is not of type 'boolean'"),
        ('data={"max_items": 4.5}', "data.max_items", "'4.5' is not of type 'integer', 'null'"),
        ('generation={"batch_size": 0}', "generation.batch_size", "0 is less than the minimum of 1"),
        ('errors={"enabled": 1}', "errors.enabled", "'1' is not of type 'boolean'"),
        ('errors={"wrong_answer": {"max_score": nan}}', "errors.wrong_answer.max_score", "'nan' is not of type"),
        ('intervals={"enabled": [true]}', "intervals.enabled", "['true'] is not of type 'boolean'"),
        ('intervals={"colour": 1}', "intervals", "unknown key 'colour'"),
        ("shots=[0,5]", "demonstrations", "5-shot (key 'shots') needs at least 5 demonstration ids, 2 configured"),
    ],
)
def test_override_that_cannot_be_coerced_names_the_key(entry, key, message):
    config, overrides = overridden(entry)
    with pytest.raises(XmrcError) as raised:
        validate_config(config, "config (config/smoke.yaml)", overrides=overrides)
    text = str(raised.value)
    assert "\n" not in text and text.startswith(f"config (config/smoke.yaml): key '{key}': {message}"), text


def test_overrides_follow_refs_and_type_lists_of_the_schema(monkeypatch):
    """`$ref`s (to another schema file of xmrc/schemas or into the schema's `$defs`, siblings kept) and
    `oneOf`/`anyOf` type lists: the real schemas, with some sections written that way."""
    import xmrc.config
    from xmrc.validation import _schema

    schema = _schema("config.schema.yaml")
    schema["$defs"] = {"count": {"type": "integer", "minimum": 1}}
    properties = schema["properties"]
    properties["intervals"] = {"$ref": "config.intervals.schema.yaml#/properties/intervals"}
    properties["generation"]["properties"]["batch_size"] = {"$ref": "#/$defs/count", "default": 16}
    properties["data"]["properties"]["max_items"] = {"oneOf": [{"type": "integer"}, {"type": "null"}]}
    properties["oracle"]["properties"]["sample_size"] = {"anyOf": [{"$ref": "#/$defs/count"}, {"const": None}]}
    properties["layers"]["properties"]["seed"] = {"anyOf": [{"type": "integer"}, {"type": "string"}]}
    monkeypatch.setattr(xmrc.config, "_schema", lambda name: schema)
    config, overrides = overridden(
        'intervals={"enabled": true, "confidence": 0.9}',
        'generation={"batch_size": 8}',
        'data={"max_items": 3}',
        'oracle={"sample_size": null}',
        'layers={"seed": 5}',
    )
    xmrc.config.coerce_overrides(config, overrides)
    assert config["intervals"] == {"enabled": True, "confidence": 0.9}
    assert config["generation"]["batch_size"] == 8 and config["data"]["max_items"] == 3
    assert config["oracle"]["sample_size"] is None
    assert config["layers"]["seed"] == "5"  # a string is one of the declared types: kept


@pytest.mark.parametrize(
    "switch, value, allowed",
    [
        ("layout", "double", "['paper', 'compact']"),
        ("answer_cue", "always", "['none', 'label']"),
        ("extraction", "last_line", "['first_line', 'answer_label']"),
        ("oracle_items", "shared", "['common', 'per_model']"),
        ("oracle_step", "first_token", "['answer_token', 'first_step']"),
    ],
)
def test_a_protocol_switch_names_its_key_and_its_values(switch, value, allowed):
    config = paper_config()
    assert config["protocol"]["layout"] == "paper" and config["protocol"]["answer_cue"] == "none"  # A.3's print
    config["protocol"][switch] = value
    with pytest.raises(XmrcError) as raised:
        validate_config(config, "config (config/config.yaml)")
    assert str(raised.value) == (
        f"config (config/config.yaml): key 'protocol.{switch}': '{value}' is not one of {allowed}"
    )
