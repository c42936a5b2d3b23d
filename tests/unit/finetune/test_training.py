"""Finetuning through LLaMA-Factory: the generated configs of the paper runs, real CPU training of tiny models
(full SFT and LoRA merged by export) and resume after a kill; the paper config's DAG is
tests/workflow/test_finetune_workflow.py."""

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from helpers import ROOT
from xmrc.config import load_config
from xmrc.finetune import conversations, lfconfig, training
from xmrc.io import read_parquet

ENV = dict(os.environ, PYTHONPATH=str(ROOT / "src"))


def xmrc(*args, check=True):
    result = subprocess.run(
        [sys.executable, "-m", "xmrc", *map(str, args)], capture_output=True, text=True, env=ENV, cwd=ROOT
    )
    if check:
        assert result.returncode == 0, result.stderr[-3000:]
    return result


def paper_config(tmp_path, model):
    config = load_config(ROOT / "config" / "config.yaml")
    method = yaml.safe_load((ROOT / "config" / "models.yaml").read_text())[model]["finetune"]["method"]
    out = tmp_path / model
    xmrc(
        "finetune-config",
        "--registry",
        "config/models.yaml",
        "--model",
        model,
        "--hyperparameters",
        json.dumps(config["finetune"][method]),
        "--dataset",
        out / "data.parquet",
        "--work-dir",
        f"resources/finetune_work/{model}",
        "--out-dir",
        out,
    )
    return (yaml.safe_load((out / "train.yaml").read_text()), json.loads((out / "dataset_info.json").read_text()))


def test_paper_tulu_full_sft_config_has_the_papers_hyperparameters(tmp_path):
    train, info = paper_config(tmp_path, "llama-3.1-tuned-8b")
    expected = {
        "model_name_or_path": "meta-llama/Llama-3.1-8B",
        "stage": "sft",
        "do_train": True,
        "finetuning_type": "full",
        "template": "llama3",
        "num_train_epochs": 1.0,
        "cutoff_len": 2048,
        "per_device_train_batch_size": 8,
        "learning_rate": 1.0e-5,
        "warmup_ratio": 0.1,
        "lr_scheduler_type": "cosine",
        "bf16": True,
        "dataset": "xmrc_tulu3",
    }
    assert {key: train.get(key) for key in expected} == expected
    assert "max_steps" not in train and "lora_rank" not in train
    deepspeed = json.loads((ROOT / train["deepspeed"]).read_text())
    assert deepspeed["zero_optimization"]["stage"] == 3
    registry = yaml.safe_load((ROOT / "config" / "models.yaml").read_text())
    assert registry["llama-3.1-tuned-8b"]["finetune"]["gpus"] == 8
    entry = info["xmrc_tulu3"]
    assert entry["formatting"] == "sharegpt" and entry["columns"] == {"messages": "messages"}
    assert (tmp_path / "llama-3.1-tuned-8b" / entry["file_name"]).name == "data.parquet"


@pytest.mark.parametrize(
    "model, sources", [("llama-3.1-8b-qt-zh-es", ["zh", "es"]), ("llama-3.1-8b-qt-zh-de", ["zh", "de"])]
)
def test_paper_question_translation_lora_config_has_the_papers_hyperparameters(tmp_path, model, sources):
    train, _ = paper_config(tmp_path, model)
    expected = {
        "finetuning_type": "lora",
        "lora_rank": 8,
        "lora_alpha": 16,
        "lora_target": "q_proj,v_proj",
        "num_train_epochs": 3.0,
        "learning_rate": 5.0e-5,
        "lr_scheduler_type": "cosine",
        "cutoff_len": 2048,
        "val_size": 0.05,
        "dataset": "xmrc_question_translation",
    }
    assert {key: train.get(key) for key in expected} == expected
    registry = yaml.safe_load((ROOT / "config" / "models.yaml").read_text())[model]["finetune"]
    batch = train["per_device_train_batch_size"] * train["gradient_accumulation_steps"] * max(registry["gpus"], 1)
    assert batch == 16
    assert registry["sources"] == sources and registry["target"] == "en"


def test_config_command_rejects_a_model_that_is_not_finetuned(tmp_path):
    result = xmrc(
        "finetune-config",
        "--registry",
        "config/models.yaml",
        "--model",
        "llama-3.1-8b",
        "--hyperparameters",
        "{}",
        "--dataset",
        "x",
        "--work-dir",
        "w",
        "--out-dir",
        tmp_path,
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "xmrc: error: model 'llama-3.1-8b' is not a finetuned model (needs source: finetune and a finetune block)"
    ]


@pytest.fixture(scope="module")
def sft_data(tmp_path_factory):
    kept, _ = conversations.split_valid(conversations.read_local(ROOT / "data" / "tulu3_sample" / "tulu3_sample.jsonl"))
    folder = tmp_path_factory.mktemp("sft_data")
    kept.to_parquet(folder / "tulu3.parquet")
    return folder / "tulu3.parquet"


def tiny_train_config(folder, base, data, method, **overrides):
    hyper = dict(load_config(ROOT / "config" / "smoke.yaml")["finetune"][method], **overrides)
    spec = {"method": method, "dataset": "tulu3", "template": "llama3"}
    return lfconfig.write_configs(spec, hyper, str(base), data, folder, folder / "work")


def generate_once(weights):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(weights)
    model = AutoModelForCausalLM.from_pretrained(weights)
    text = tokenizer.apply_chat_template(
        [{"role": "user", "content": "Hello?"}], tokenize=False, add_generation_prompt=True
    )
    ids = tokenizer(text, return_tensors="pt", add_special_tokens=False)
    out = model.generate(**ids, max_new_tokens=3, do_sample=False)
    return out.shape[1] > ids["input_ids"].shape[1]


def test_full_sft_trains_a_tiny_model_on_cpu_and_it_loads_for_evaluation(tmp_path, tiny_models, sft_data):
    config = tiny_train_config(tmp_path, tiny_models["llama-base"], sft_data, "full")
    result = xmrc("finetune-train", "--train-config", config, "--out", tmp_path / "model")
    assert "finetuned model ready" in result.stdout
    provenance = json.loads((tmp_path / "model" / training.PROVENANCE).read_text())
    assert provenance["method"] == "full" and provenance["global_step"] == 4
    assert provenance["llamafactory_version"] == "0.9.5"
    # The base had no chat template; LLaMA-Factory's llama3 template is saved with the tuned model.
    assert "<|start_header_id|>" in (tmp_path / "model" / "chat_template.jinja").read_text()
    assert generate_once(tmp_path / "model")
    again = xmrc("finetune-train", "--train-config", config, "--out", tmp_path / "model")
    assert "training already finished" in again.stderr


def test_lora_trains_and_is_merged_into_its_base(tmp_path, tiny_models, sft_data):
    from safetensors.torch import load_file

    base = tiny_models["llama-chat"]
    config = tiny_train_config(tmp_path, base, sft_data, "lora", learning_rate=0.05)
    xmrc("finetune-train", "--train-config", config, "--out", tmp_path / "model")
    train = yaml.safe_load(config.read_text())
    assert train["finetuning_type"] == "lora" and train["eval_strategy"] == "steps"
    adapter = json.loads((tmp_path / "model" / "adapter" / "adapter_config.json").read_text())
    assert adapter["r"] == 8 and adapter["lora_alpha"] == 16 and set(adapter["target_modules"]) == {"q_proj", "v_proj"}
    merged, original = load_file(tmp_path / "model" / "model.safetensors"), load_file(Path(base) / "model.safetensors")
    changed = {name for name in original if not (merged[name] == original[name]).all()}
    assert changed and all(re.search(r"\.(q_proj|v_proj)\.weight$", name) for name in changed)
    assert generate_once(tmp_path / "model")


def test_killed_training_resumes_from_its_last_complete_checkpoint(tmp_path, tiny_models, sft_data):
    config = tiny_train_config(
        tmp_path,
        tiny_models["llama-base"],
        sft_data,
        "full",
        max_steps=120,
        save_steps=5,
        logging_steps=50,
        per_device_train_batch_size=2,
    )
    work = tmp_path / "work"
    command = [
        sys.executable,
        "-m",
        "xmrc",
        "finetune-train",
        "--train-config",
        str(config),
        "--out",
        str(tmp_path / "model"),
    ]
    process = subprocess.Popen(
        command, env=ENV, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    deadline = time.monotonic() + 300
    while not (work / "checkpoint-5" / "trainer_state.json").is_file():
        assert process.poll() is None and time.monotonic() < deadline, "training ended before its first checkpoint"
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    assert not (work / training.FINISHED).is_file(), "the training finished before it could be killed"
    complete = [step for step, _, done in training.checkpoints(work) if done]
    (work / "checkpoint-119").mkdir()  # as if the kill had hit the middle of a save
    (work / "checkpoint-119" / "config.json").write_text("{}")

    result = subprocess.run(command, env=ENV, cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"resuming from {work / f'checkpoint-{max(complete)}'}" in result.stderr
    assert f"removed incomplete checkpoint {work / 'checkpoint-119'}" in result.stderr
    assert f"Continuing training from global step {max(complete)}" in result.stderr
    state = json.loads((work / "trainer_state.json").read_text())
    assert state["global_step"] == 120
    assert json.loads((tmp_path / "model" / training.PROVENANCE).read_text())["resumed_from"].endswith(
        f"checkpoint-{max(complete)}"
    )


def test_heldout_eval_scores_the_base_on_exactly_the_held_out_items(tmp_path, tiny_models):
    data, ids = tmp_path / "xquad.parquet", tmp_path / "ids.txt"
    xmrc(
        "data",
        "--source",
        "local",
        "--local-dir",
        "data/xquad_subset",
        "--languages",
        "en",
        "de",
        "--out",
        data,
        "--problems",
        tmp_path / "problems.csv",
    )
    xmrc(
        "finetune-split",
        "--data",
        data,
        "--eval-fraction",
        "0.3",
        "--seed",
        "0",
        "--demonstrations",
        "56dde1d966d3e219004dad8d",
        "56de49564396321400ee277a",
        "--out-split",
        tmp_path / "split.csv",
        "--out-ids",
        ids,
    )
    common = [
        "finetune-heldout-eval",
        "--data",
        data,
        "--registry",
        "config/models.yaml",
        "--model",
        "tiny-llama-chat",
        "--weights",
        tiny_models["llama-chat"],
        "--ids",
        ids,
        "--languages",
        "en",
        "de",
        "--demonstrations",
        "56dde1d966d3e219004dad8d",
        "56de49564396321400ee277a",
        "--max-items",
        "2",
        "--max-new-tokens",
        "2",
        "--dtype",
        "float32",
        "--out-dir",
        tmp_path / "heldout",
    ]
    xmrc(*common, "--settings", "0:v1")
    scores = read_parquet(tmp_path / "heldout" / "scores" / "tiny-llama-chat" / "0shot-v1.parquet")
    held_out = ids.read_text().split()
    assert set(scores["id"]) == set(held_out[:2]) and len(scores) == 2 * 3  # en-en, en-de, de-de
    bad = xmrc(*common, "--settings", "2-v1", check=False)
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines() == ["xmrc: error: --settings: '2-v1' is not SHOTS:FORMAT, e.g. 2:v1"]
