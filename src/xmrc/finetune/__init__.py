"""Finetuning with LLaMA-Factory: training data, generated LLaMA-Factory configs, resumable training, and the
base-vs-tuned comparison of the evaluated models.

Modules: `conversations` (TULU-3 SFT data: validation, subsampling), `pairs` (question-translation pairs with an
article-level split), `lfconfig` (LLaMA-Factory YAML and dataset_info.json), `training` (llamafactory-cli with
resume from the last complete checkpoint, LoRA merge), `compare` (tables and figure), `heldout` (a base
model scored on the held-out articles).
"""

from xmrc.config import Model, Registry
from xmrc.exceptions import XmrcError


def finetuned_model(registry: Registry, key: str) -> Model:
    """The registry's model `key`, which must be a finetuned one (source: finetune, with a finetune block)."""
    model = registry.get(key)
    if model.source != "finetune" or not model.finetune:
        raise XmrcError(f"model '{model.key}' is not a finetuned model (needs source: finetune and a finetune block)")
    return model
