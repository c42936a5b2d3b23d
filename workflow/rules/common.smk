# Config validation, the model registry and input functions. Rule bodies hold no logic.
import os
import re
import shlex
import sys
from pathlib import Path

SRC = str(Path(workflow.basedir) / "src")
sys.path.insert(0, SRC)
# Rules call `python -m xmrc`; the package runs from this checkout in any environment (conda, venv, SLURM).
shell.prefix(f'export PYTHONPATH="{SRC}${{{{PYTHONPATH:+:$PYTHONPATH}}}}"; ')

from xmrc import __version__ as XMRC_VERSION
from xmrc import report_tables
from xmrc.hub import scheduling
from xmrc.generation import CODE_VERSION as GENERATION_CODE
from xmrc.prompts import CODE_VERSION as PROMPTS_CODE
from xmrc.prompts import PAPER_SCENARIOS
from xmrc.config import PACKAGED_DIR, Registry, check_interpreter, model_weights, validate_config, validate_run
from xmrc.exceptions import XmrcError
from xmrc.sensitivity import apply_arm, arm_names
from xmrc.paper.published import our_file_names as paper_table_files
from xmrc.paper.published import paper_rows


def _conda_deployment():
    methods = getattr(getattr(workflow, "deployment_settings", None), "deployment_method", None) or ()
    return any(str(getattr(method, "name", method)).lower() == "conda" for method in methods)


# Every config problem stops the run here, before any rule is defined, with one line naming the key. The
# command line's --config values (strings inside lists and mappings) get the schema's types first.
try:
    validate_config(
        config,
        "config (" + ", ".join(map(str, workflow.configfiles)) + ")",
        overrides=getattr(getattr(workflow, "config_settings", None), "config", None),
    )
    # one arm of a protocol-sensitivity study (config/protocol.yaml): its overrides merged, its own run name
    if config["protocol_study"]["arm"]:
        arm_config = apply_arm(config)
        config.clear()
        config.update(validate_config(arm_config, f"protocol_study arm {arm_config['run']}"))
    REGISTRY = Registry.load(config["registry"])
    PLAN = validate_run(config, REGISTRY)
    if PLAN.uses_vllm_python:
        check_interpreter(
            config["backends"]["vllm"]["python"], "backends.vllm.python", resolved_by_job=_conda_deployment()
        )
except XmrcError as error:
    print(f"xmrc: error: {error}", file=sys.stderr)
    sys.exit(1)

# ROWS: the table rows (config 'models', 'extra_models') and the shots settings each is evaluated in
# ('skip_models'); MODELS: every model the run evaluates
ROWS = PLAN.rows
MODELS = PLAN.models
DATASET = PLAN.dataset

RUN = config["run"]
RESULTS = f"results/{RUN}"
LANGS = config["languages"]
SCENARIOS = config["scenarios"]
# The prompts rule's --languages value, with --scenarios only where they are not the paper's: the paper
# config's command and params stay as they were, so a finished paper run is not re-run.
PROMPT_LANGUAGES = " ".join(LANGS) + (
    "" if tuple(SCENARIOS) == PAPER_SCENARIOS else " --scenarios " + " ".join(SCENARIOS)
)
SETTINGS = PLAN.settings
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


HUB_CACHE = config["backends"]["hub_cache"]
BACKENDS = config["backends"]
LOCAL_MODELS = [key for key, model in MODELS.items() if model.backend == "local"]
API_MODELS = [key for key, model in MODELS.items() if model.backend == "api"]


# Sources whose weights the workflow itself makes (built, trained, converted from a package's GGUF): those
# directories are inputs of every job that loads the model, so their rule runs first.
BUILT_SOURCES = ("tiny", "finetune", "gguf")


def model_inputs(wildcards):
    """Locally built, trained or converted weights are inputs, so the model is built (trained, converted)
    first; hub models' snapshots are fetched by a local rule on the submit host (compute nodes may have no
    internet) and read offline. A question-translation finetune is evaluated on the held-out articles only
    (their ids file)."""
    model = model_of(wildcards)
    inputs = {}
    if model.source in BUILT_SOURCES:
        inputs["weights"] = weights_of(wildcards)
    elif model.backend == "local" and model.source == "hub":
        inputs["snapshot"] = snapshot_stamp(wildcards.model)
    if model.source == "finetune" and model.finetune["dataset"] == "question_translation":
        inputs["eval_ids"] = f"{RESULTS}/finetune/data/heldout_ids.txt"
    return inputs


VLLM_PYTHON = BACKENDS["vllm"]["python"]

# The protocol switches (config `protocol`), as the commands take them. Each is a param of exactly the rules
# whose outputs it changes, so flipping one re-runs those jobs and what depends on them, nothing else.
PROTOCOL = config["protocol"]
PROMPT_PROTOCOL = (
    f"--layout {PROTOCOL['layout']} --answer-cue {PROTOCOL['answer_cue']}"
    f" --answer-language {PROTOCOL['answer_language']}"
    + (f" --system-prompt {shlex.quote(PROTOCOL['system_prompt'])}" if PROTOCOL["system_prompt"] else "")
)
EXTRACTION = f"--extraction {PROTOCOL['extraction']}"


# Engine options of every vLLM generation command (generate-job, finetune-heldout-eval): a param, so the same on
# every attempt; what a retry changes (KV cache, batch) comes from the attempt (generate's `resources.attempt`).
VLLM_ENGINE_OPTIONS = f"--gpu-memory-utilization {BACKENDS['vllm']['gpu_memory_utilization']}" + (
    f" --max-model-len {BACKENDS['vllm']['max_model_len']}" if BACKENDS["vllm"]["max_model_len"] else ""
)


def packaged_check(key):
    """Stamp of the tokenizer check of a converted (gguf-source) model under the vLLM jobs' interpreter, on this
    run's contexts and questions: one per run, so two runs of one model never redo each other's check (and
    with it their generation jobs)."""
    return f"{RESULTS}/checks/{key}.vllm-tokenizer.txt"


def vllm_model_inputs(model):
    """Inputs a vLLM job of `model` adds: for a gguf-source model, its tokenizer checked under the vLLM
    interpreter (a tokenizer that does not pass there stops the run before any vLLM job). Not ancient(): in
    Snakemake 9.27 a job with an ancient input whose producer must run is left out of the DAG."""
    return {"tokenizer_check": packaged_check(model.key)} if model.source == "gguf" else {}


def generate_inputs(wildcards):
    inputs = model_inputs(wildcards)
    if BACKENDS["local"] == "vllm":
        inputs.update(vllm_model_inputs(model_of(wildcards)))
    return inputs


def snapshot_stamp(key):
    return f"{HUB_CACHE}/stamps/{key}.json"


def snapshot_arg(wildcards, input):
    return f"--snapshot {input.snapshot}" if "snapshot" in input.keys() else ""


def model_digest(wildcards):
    return scheduling.entry_digest(model_of(wildcards))


def gpus_of(wildcards):
    return scheduling.job_gpus(model_of(wildcards))


def gpu_model_of(wildcards):
    return scheduling.job_gpu_model(model_of(wildcards), BACKENDS)


def cpus_per_gpu_of(wildcards):
    return BACKENDS["cpus_per_gpu"] if scheduling.uses_gpu(model_of(wildcards)) else 0


def generation_mem_mb(wildcards, attempt):
    return scheduling.job_mem_mb(model_of(wildcards), BACKENDS, attempt)


def generation_runtime(wildcards, attempt):
    return scheduling.job_runtime_min(model_of(wildcards), BACKENDS, attempt)


def model_key_pattern(keys):
    return "|".join(re.escape(key) for key in keys) or "(?!)"


# The evaluated split's table (XQuAD: results/<run>/data/xquad.parquet) and, for datasets whose
# demonstrations come from another split (MLQA: validation), that split's table.
DATA_TABLE = f"{RESULTS}/data/{DATASET.key}.parquet"
DEMONSTRATION_TABLE = (
    f"{RESULTS}/data/{DATASET.key}_{DATASET.demonstration_split}.parquet" if DATASET.demonstration_split else None
)


def data_inputs(split):
    """The dataset's own files of a split (local source; the hub has none to track)."""
    if config["data"]["source"] == "local":
        return [str(DATASET.local_file(config["data"]["local_dir"], split, lang)) for lang in LANGS]
    return []


def data_origin():
    """Which dataset (only named when not the paper's) and where from: arguments of `xmrc data`."""
    dataset = "" if DATASET.key == "xquad" else f"--dataset {DATASET.key} --datasets {config['datasets']} "
    if config["data"]["source"] == "local":
        return f"{dataset}--local-dir {config['data']['local_dir']}"
    revision = f" --revision {config['data']['revision']}" if config["data"]["revision"] else ""
    return f"{dataset}--hub-id {config['data']['hub_id'] or DATASET.hub_id}{revision}"


def prompt_data_args(wildcards, input):
    """How items align and where demonstrations come from, each with its leading space (nothing for a parallel
    dataset like XQuAD: the paper's commands stay as they were)."""
    if DATASET.alignment == "parallel":
        return ""
    demonstrations = f" --demonstration-data {input.demonstration_data}" if DEMONSTRATION_TABLE else ""
    return f" --alignment {DATASET.alignment}{demonstrations}"


def demonstration_data(wildcards):
    return {"demonstration_data": DEMONSTRATION_TABLE} if DEMONSTRATION_TABLE else {}


def job_stems():
    """Generation jobs of the table rows in the settings they are evaluated in (analysis-only models add
    theirs through the analysis's inputs)."""
    return [f"{key}/{shots}shot-{fmt}" for shots, fmt in SETTINGS for key in ROWS.evaluated(shots)]


# The extra models' paper names: rows of the per-language tables, left out of the summary tables.
SUMMARY_LEFT_OUT = " ".join(f"'{model.name}'" for model in ROWS.extra.values())
# tables.paper_rows: the tables the paper publishes get exactly its rows, the others <table>_extra (the models'
# paper names from the registry); the option of the tables and error-tables commands.
PAPER_ROWS = config["tables"]["paper_rows"]
PAPER_ROWS_OPTION = f"--paper-rows --registry {config['registry']}" if PAPER_ROWS else ""


def with_extra(stems):
    """The stems and, with tables.paper_rows, the <stem>_extra of each the paper publishes (xmrc.tables.write_rows)."""
    return list(stems) + ([f"{stem}_extra" for stem in stems if paper_rows(stem) is not None] if PAPER_ROWS else [])


# Stages append their final outputs here (rule all is built after every include).
EXTRA_TARGETS = []


def all_targets():
    return EXTRA_TARGETS + [
        f"{RESULTS}/tables/direction_scores.csv",
        f"{RESULTS}/tables/item_scores.parquet",
        *table_outputs(),
        *figure_outputs(),
    ]


def matrix_figures():
    """Context x question F1 matrix per model and setting, where the run has x-y directions."""
    if "x-y" not in PLAN.scenarios:
        return []
    return [f"{RESULTS}/figures/matrix_f1/{stem}.png" for stem in job_stems()]


def table_outputs():
    stems = [f"summary_{shots}shot" for shots in config["shots"]] + [
        f"{metric}_{shots}shot_{scenario}"
        for shots in config["shots"]
        for scenario in PLAN.scenarios
        for metric in ("f1", "em")
    ]
    return [f"{RESULTS}/tables/{stem}.{ext}" for stem in with_extra(stems) for ext in ("csv", "md")]


def figure_outputs():
    return (
        [
            f"{RESULTS}/figures/heatmap_f1_{shots}shot_{scenario}.png"
            for shots in config["shots"]
            for scenario in PLAN.scenarios
        ]
        + [f"{RESULTS}/figures/means_{shots}shot.png" for shots in config["shots"]]
        + matrix_figures()
    )


def paper_comparison_tables(wildcards):
    """The run's tables that hold cells of the paper's (the others were not produced: nothing to compare)."""
    produced = {path for path in all_targets() if path.startswith(f"{RESULTS}/tables/")}
    return [f"{RESULTS}/tables/{name}" for name in paper_table_files() if f"{RESULTS}/tables/{name}" in produced]


def report_table_item(stem):
    """results/<run>/report/<stem>.html as a report item, beside its stage's figures (xmrc.report_tables)."""
    where = report_tables.placement(stem)
    return report(
        f"{RESULTS}/report/{stem}.html",
        caption=f"../report/table_{where['caption']}.rst",
        category=where["category"],
        subcategory=where["subcategory"],
        labels={"table": where["title"]},
    )


def folder_of(path, name):
    """The folder of `path` = <folder>/<name>, where name may hold subfolders (finetune/comparison_2shot.csv)."""
    return str(path)[: -len(name) - 1]
