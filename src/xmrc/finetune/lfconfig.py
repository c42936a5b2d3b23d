"""LLaMA-Factory configs generated from our config: the `llamafactory-cli train` YAML, its dataset_info.json,
and (LoRA) the `llamafactory-cli export` config that merges the adapter into the base weights.

The export config is built when the training has finished (xmrc.finetune.training.finalize).
Hyperparameters come from the run config's `finetune.<method>` block (keys are LLaMA-Factory's own names),
the structure (base weights, template, dataset, output directory) from the registry entry's `finetune` block.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import yaml

from xmrc.exceptions import XmrcError
from xmrc.io import write_text

DATASET_NAMES = {"tulu3": "xmrc_tulu3", "question_translation": "xmrc_question_translation"}

# Keys of a method block that are ours, not LLaMA-Factory's.
_OURS = {"preprocessing_num_workers"}

# The hyperparameters each method passes on, in the train config's order: both share the schedule and the run's
# settings; LoRA adds its adapter and an evaluation split.
_SCHEDULE_KEYS = [
    "num_train_epochs",
    "cutoff_len",
    "per_device_train_batch_size",
    "gradient_accumulation_steps",
    "learning_rate",
    "warmup_ratio",
    "lr_scheduler_type",
]
_RUN_KEYS = ["bf16", "deepspeed", "max_steps", "save_steps", "logging_steps"]
_METHOD_KEYS = {
    "full": [*_SCHEDULE_KEYS, *_RUN_KEYS],
    "lora": ["lora_rank", "lora_alpha", "lora_target", *_SCHEDULE_KEYS, "val_size", *_RUN_KEYS, "eval_steps"],
}


def dataset_info(dataset: str, data_file: str | Path, dataset_dir: str | Path) -> dict:
    """The dataset_info.json entry for a messages-format table (see xmrc.finetune.conversations)."""
    if dataset not in DATASET_NAMES:
        raise XmrcError(f"unknown finetune dataset {dataset!r} (expected one of {', '.join(DATASET_NAMES)})")
    return {
        DATASET_NAMES[dataset]: {
            "file_name": os.path.relpath(data_file, dataset_dir),
            "formatting": "sharegpt",
            "columns": {"messages": "messages"},
            "tags": {
                "role_tag": "role",
                "content_tag": "content",
                "user_tag": "user",
                "assistant_tag": "assistant",
                "system_tag": "system",
            },
        }
    }


def train_config(
    spec: dict, hyperparameters: dict, base_weights: str, dataset_dir: str | Path, output_dir: str | Path
) -> dict:
    """The `llamafactory-cli train` config of one registry model.

    `spec` is the registry entry's finetune block (method, dataset, template); `hyperparameters` the run
    config's block for that method. Null values (no DeepSpeed, no max_steps) are left out.
    """
    method = spec["method"]
    if method not in _METHOD_KEYS:
        raise XmrcError(f"unknown finetune method {method!r} (expected full or lora)")
    config = {
        "model_name_or_path": base_weights,
        "trust_remote_code": False,
        "stage": "sft",
        "do_train": True,
        "finetuning_type": method,
        "dataset": DATASET_NAMES[spec["dataset"]],
        "dataset_dir": str(dataset_dir),
        "template": spec["template"],
        "overwrite_cache": True,
        "preprocessing_num_workers": hyperparameters.get("preprocessing_num_workers", 1),
        "dataloader_num_workers": 0,
        "output_dir": str(output_dir),
        # A re-run resumes from the last complete checkpoint (xmrc.finetune.training), never starts over.
        "overwrite_output_dir": False,
        "save_only_model": False,
        "plot_loss": False,
        "report_to": "none",
        "ddp_timeout": 180000000,
    }
    for key in _METHOD_KEYS[method]:
        value = hyperparameters.get(key)
        if value is None:
            continue
        if key == "lora_target" and isinstance(value, list):
            value = ",".join(value)
        config[key] = value
    if config.get("val_size"):
        config.update(eval_strategy="steps", per_device_eval_batch_size=config["per_device_train_batch_size"])
        config.setdefault("eval_steps", config.get("save_steps", 500))
    unknown = set(hyperparameters) - set(_METHOD_KEYS[method]) - _OURS
    if unknown:
        raise XmrcError(f"finetune.{method}: unknown hyperparameter(s) {', '.join(sorted(unknown))}")
    return config


def export_config(train: dict, base_weights: str, adapter_dir: str | Path, export_dir: str | Path) -> dict:
    """`llamafactory-cli export`: merge a LoRA adapter into its base and save a standalone model
    (`train` is the train config, or any mapping with its `template`)."""
    return {
        "model_name_or_path": base_weights,
        "adapter_name_or_path": str(adapter_dir),
        "template": train["template"],
        "finetuning_type": "lora",
        "trust_remote_code": False,
        "export_dir": str(export_dir),
        "export_size": 5,
        "export_device": "cpu",
        "export_legacy_format": False,
    }


def write_configs(
    spec: dict,
    hyperparameters: dict,
    base_weights: str,
    data_file: str | Path,
    out_dir: str | Path,
    work_dir: str | Path,
) -> Path:
    """train.yaml and its dataset_info.json in `out_dir` (see train_config); returns train.yaml's path."""
    out_dir = Path(out_dir)
    train = train_config(spec, hyperparameters, base_weights, out_dir, work_dir)
    write_json(dataset_info(spec["dataset"], data_file, out_dir), out_dir / "dataset_info.json")
    return write_yaml(train, out_dir / "train.yaml")


def write_yaml(config: dict, path: str | Path) -> Path:
    return write_text(yaml.safe_dump(config, sort_keys=False, allow_unicode=True), path)


def write_json(data: dict, path: str | Path) -> Path:
    """In LLaMA-Factory's layout (indent 2, keys in order), not xmrc.io.write_json's."""
    return write_text(json.dumps(data, indent=2) + "\n", path)
