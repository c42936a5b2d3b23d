"""Finetuning with LLaMA-Factory: training data, generated LLaMA-Factory configs, resumable training, and the
base-vs-tuned comparison of the evaluated models.

Modules: `conversations` (TULU-3 SFT data: validation, subsampling), `pairs` (question-translation pairs with an
article-level split), `lfconfig` (LLaMA-Factory YAML and dataset_info.json), `training` (llamafactory-cli with
resume from the last complete checkpoint, LoRA merge), `compare` (tables and figure), `commands` (CLI).
"""
