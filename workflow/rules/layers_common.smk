# Stage 'layers': settings, model selection, targets and input/report helpers (included by layers.smk).
from xmrc.analysis.layers.inputs import LAYER_CODE_VERSION as LAYER_CODE

LAYERS = config["layers"]
LAYER_DIR = f"{RESULTS}/layers"
LAYER_FIGURES = f"{RESULTS}/figures/layers"
LAYER_PARTS = ["question", "context", "last"]
# A setting's format in paths: v1, v2, or best = each model's format chosen by tables.format_criterion,
# decided by layer_groups at run time (the tables inside hold the format itself).
LAYER_BEST = "best"
LAYER_FORMAT = r"v\d+|best"


# The analysed models; those outside 'models' and 'extra_models' are evaluated for the analysis only
LAYER_MODELS = PLAN.layer_models
LAYER_SETTINGS = PLAN.layer_settings
LAYER_SERIES = PLAN.layer_series


def layer_formats(fmt):
    """The run's formats a layers setting reads: all of them for best (the choice is made on their scores)."""
    return config["prompt_formats"] if fmt == LAYER_BEST else [fmt]


def layer_item_scores():
    """Per-item F1 the groups are drawn from (and best formats chosen by): the run's item table plus the
    scores of the models it does not hold in the analysed setting (analysis-only models, and rows skipped in
    that setting)."""
    extra = [
        f"{RESULTS}/scores/{key}/{shots}shot-{fmt}.parquet"
        for key in LAYER_MODELS
        for shots, setting in LAYER_SETTINGS
        for fmt in layer_formats(setting)
        if key not in ROWS.evaluated(shots)
    ]
    return [f"{RESULTS}/tables/item_scores.parquet"] + list(dict.fromkeys(extra))


def layer_setting_files(kind):
    """The model's prompts/generations a layers setting reads, per format (every format for best)."""

    def files(wildcards):
        return {
            fmt: f"{RESULTS}/{kind}/{wildcards.model}/{wildcards.shots}shot-{fmt}.parquet"
            for fmt in layer_formats(wildcards.fmt)
        }

    return files


def layer_file_pairs(kind):
    """layer_setting_files as FORMAT=PATH arguments."""
    return lambda wildcards: " ".join(f"{fmt}={path}" for fmt, path in layer_setting_files(kind)(wildcards).items())


def layer_stems():
    return [f"{key}/{shots}shot-{fmt}" for key in LAYER_MODELS for shots, fmt in LAYER_SETTINGS]


def layer_mem_mb(wildcards):
    return scheduling.layer_mem_mb(model_of(wildcards))


def layer_targets():
    figures = [
        f"{LAYER_FIGURES}/{stem}/{name}.png"
        for stem in layer_stems()
        for name in ["mrd_context_question", "mrd_task_demos"] + [f"similarity_{p}" for p in LAYER_PARTS]
    ]
    changes = [
        f"{LAYER_FIGURES}/change/{series}/{shots}shot-{fmt}/similarity_change_{part}.png"
        for series in LAYER_SERIES
        for shots, fmt in LAYER_SETTINGS
        for part in LAYER_PARTS
    ]
    examples = [f"{LAYER_FIGURES}/{stem}/attribution_example.png" for stem in layer_stems() if LAYERS["example_items"]]
    names = ("group_sizes.csv", "mrd.csv", "similarity.csv", "similarity_items.parquet")
    tables = [f"{LAYER_DIR}/{name}" for name in names]
    return tables + figures + examples + changes if LAYER_MODELS else []


EXTRA_TARGETS.extend(layer_targets())


def _layer_figure(name, caption, labels):
    return report(
        f"{LAYER_FIGURES}/{{model}}/{{shots}}shot-{{fmt}}/{name}.png",
        caption=f"../report/{caption}.rst",
        category="Layer-wise analysis",
        subcategory="{model}",
        labels=dict(labels, model="{model}", setting="{shots}-shot {fmt}"),
    )


def _change_figure(part):
    return report(
        f"{LAYER_FIGURES}/change/{{series}}/{{shots}}shot-{{fmt}}/similarity_change_{part}.png",
        caption="../report/layers_change.rst",
        category="Layer-wise analysis",
        subcategory="change: {series}",
        labels={"figure": f"similarity change: {part}", "series": "{series}", "setting": "{shots}-shot {fmt}"},
    )
