# Config validation, the model registry and input functions. Rule bodies hold no logic.
import os
import re
import sys
from pathlib import Path

SRC = str(Path(workflow.basedir) / "src")
sys.path.insert(0, SRC)
# Rules call `python -m xmrc`; the package runs from this checkout in any environment (conda, venv, SLURM).
shell.prefix(f'export PYTHONPATH="{SRC}${{{{PYTHONPATH:+:$PYTHONPATH}}}}"; ')

from xmrc import __version__ as XMRC_VERSION
from xmrc.config import Registry, model_weights, validate_config
from xmrc.exceptions import XmrcError

try:
    validate_config(config, "config (" + ", ".join(map(str, workflow.configfiles)) + ")")
    REGISTRY = Registry.load(config["registry"])
    MODELS = {model.key: model for model in REGISTRY.select(config["models"])}
except XmrcError as error:
    print(f"xmrc: error: {error}", file=sys.stderr)
    sys.exit(1)

RUN = config["run"]
RESULTS = f"results/{RUN}"
LANGS = config["languages"]
SETTINGS = [(shots, fmt) for shots in config["shots"] for fmt in config["prompt_formats"]]
TINY_DIR = "resources/tiny_models"
FINETUNE_DIR = "resources/finetuned"


wildcard_constraints:
    model="|".join(re.escape(key) for key in MODELS),
    shots=r"\d+",
    fmt=r"v\d+",


def model_of(wildcards):
    return MODELS[wildcards.model]


def weights_of(wildcards):
    return model_weights(model_of(wildcards), TINY_DIR, FINETUNE_DIR)


def model_inputs(wildcards):
    """Locally built weights are inputs, so the model is built (or trained) first; hub models are fetched by
    the job. A question-translation finetune is evaluated on the held-out articles only (their ids file)."""
    model = model_of(wildcards)
    inputs = {"weights": weights_of(wildcards)} if model.source in ("tiny", "finetune") else {}
    if model.source == "finetune" and model.finetune["dataset"] == "question_translation":
        inputs["eval_ids"] = f"{RESULTS}/finetune/data/heldout_ids.txt"
    return inputs


def gpus_of(wildcards):
    return model_of(wildcards).gpus


def data_inputs(wildcards):
    if config["data"]["source"] == "local":
        return [f"{config['data']['local_dir']}/xquad.{lang}.json" for lang in LANGS]
    return []


def job_stems():
    return [f"{key}/{shots}shot-{fmt}" for key in MODELS for shots, fmt in SETTINGS]


# Stages append their final outputs here (rule all is built after every include).
EXTRA_TARGETS = []


def all_targets():
    return EXTRA_TARGETS + [
        f"{RESULTS}/tables/direction_scores.csv",
        f"{RESULTS}/tables/item_scores.parquet",
        *table_outputs(),
        *figure_outputs(),
    ]


def scenarios():
    return ["en-x"] + (["x-x"] if any(lang != "en" for lang in LANGS) else [])


def table_outputs():
    stems = [f"summary_{shots}shot" for shots in config["shots"]] + [
        f"{metric}_{shots}shot_{scenario}"
        for shots in config["shots"]
        for scenario in scenarios()
        for metric in ("f1", "em")
    ]
    return [f"{RESULTS}/tables/{stem}.{ext}" for stem in stems for ext in ("csv", "md")]


def figure_outputs():
    return [
        f"{RESULTS}/figures/heatmap_f1_{shots}shot_{scenario}.png"
        for shots in config["shots"]
        for scenario in scenarios()
    ] + [f"{RESULTS}/figures/means_{shots}shot.png" for shots in config["shots"]]
