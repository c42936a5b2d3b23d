from pathlib import Path

import pandas as pd
import pytest
import yaml

from xmrc import LANGUAGES
from xmrc.config import Registry, load_config, model_weights, table_rows, validate_config
from xmrc.exceptions import XmrcError

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT / "tests/data/reference"


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
    return set(pd.read_csv(REFERENCE / f"{name}.csv")["model"])


def test_paper_config_evaluates_each_setting_for_the_rows_of_the_papers_tables(registry):
    rows = table_rows(load_config(ROOT / "config/config.yaml"), registry)
    names = {key: model.name for key, model in rows.all.items()}
    zero_shot, two_shot = ({names[key] for key in rows.evaluated(shots)} for shots in (0, 2))
    summary = {names[key] for key in rows.evaluated(2) if key in rows.models}
    assert summary == paper_rows("table2_2shot_summary")  # the main list, no LLaMA-2-Chat-7B
    for table in ("table5a_0shot_em_en-x", "table5b_0shot_f1_en-x", "table5c_0shot_em_x-x", "table5d_0shot_f1_x-x"):
        assert zero_shot == paper_rows(table)  # LLaMA-2-Chat-7B in; no Tuned, no DeepSeek-V3 job
    # 2-shot: every row of Tables 6-10 is generated; the per-language tables hold the rest too
    for table, more in [("table6a_2shot_f1_en-x", {"LLaMA-3.1-Tuned-8B", "DeepSeek-V3", "LLaMA-2-Chat-7B"}),
                        ("table7_2shot_language_error_en-x", {"LLaMA-3.1-Tuned-8B", "DeepSeek-V3"}),
                        ("table8_2shot_generation_failure_en-x", {"LLaMA-3.1-Tuned-8B", "DeepSeek-V3"}),
                        ("table9a_2shot_gibberish_en-x", {"LLaMA-3.1-Tuned-8B", "DeepSeek-V3"}),
                        ("table10a_2shot_f1_en-x_tuned", two_shot - {"LLaMA-3.1-Tuned-8B"})]:
        assert two_shot - paper_rows(table) == more, table
    assert rows.extra.keys() == {"llama-2-chat-7b"} and len(two_shot) == 19


def test_overriding_models_or_shots_of_the_paper_config_keeps_its_row_keys_valid(registry):
    config = validate_config(dict(paper_config(), models=["gpt-4o", "llama-2-chat-7b"], shots=[2]))
    rows = table_rows(config, registry)
    # LLaMA-2-Chat-7B in `models` is a row of every table; the 0-shot skip does nothing without 0-shot
    assert list(rows.models) == ["gpt-4o", "llama-2-chat-7b"] and not rows.extra
    assert rows.evaluated(2) == ["gpt-4o", "llama-2-chat-7b"]


@pytest.mark.parametrize("change, message", [
    (lambda c: c.update(extra_models=["llama-9"]), "config key 'extra_models[0]': unknown model 'llama-9'"),
    (lambda c: c.update(skip_models=[{"shots": 0, "models": ["llama-3.1-70b-instruct"]}]),
     "config key 'skip_models[0].models': unknown model"),
    (lambda c: c.update(models=["gpt-4o"], extra_models=[], skip_models=[{"shots": 0, "models": ["gpt-4o"]}]),
     "config key 'skip_models': no model is left to evaluate at 0-shot"),
])
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


@pytest.mark.parametrize("change, key", [
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
    (lambda c: c.update(skip_models=[{"shots": -1, "models": ["gpt-4o"]}]), "skip_models[0].shots"),
    (lambda c: c.update(extra_models="llama-2-chat-7b"), "extra_models"),
    (lambda c: c.update(demonstrations=["only-one"]), "demonstrations"),
    (lambda c: c.pop("run"), "(top level)"),
])
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
    assert str(raised.value) == ("six.yaml: key 'demonstrations': 6-shot (key 'shots') needs at least 6 "
                                 "demonstration ids, 5 configured")
    assert validate_config(dict(paper_config(), shots=[0], demonstrations=[]))["demonstrations"] == []


def test_local_source_needs_a_directory():
    config = paper_config()
    config["data"] = {"source": "local"}
    with pytest.raises(XmrcError, match="data.local_dir"):
        validate_config(config)


def test_bad_registry_entry_names_the_model(tmp_path):
    path = tmp_path / "models.yaml"
    path.write_text("good-model:\n  name: Good\n  hub_id: org/good\n  family: x\n  mode: base\n"
                    "  chat_template: false\n  gpus: 1\n  backend: local\n"
                    "bad-model:\n  name: Bad\n  hub_id: org/bad\n  family: x\n  mode: instruct\n"
                    "  chat_template: true\n  gpus: 1\n  backend: local\n")
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
