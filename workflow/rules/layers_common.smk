# Stage 'layers': settings, model selection, targets and input/report helpers (included by layers.smk).
from xmrc.analysis.layers.inputs import LAYER_CODE_VERSION as LAYER_CODE

LAYERS = config["layers"]
LAYER_DIR = f"{RESULTS}/layers"
LAYER_FIGURES = f"{RESULTS}/figures/layers"
LAYER_PARTS = ["question", "context", "last"]


# The analysed models; those outside 'models' and 'extra_models' are evaluated for the analysis only
LAYER_MODELS = PLAN.layer_models
LAYER_SETTINGS = PLAN.layer_settings
LAYER_SERIES = PLAN.layer_series


def layer_item_scores():
    """Per-item F1 the groups are drawn from: the run's item table plus the scores of the models it does not
    hold in the analysed setting (analysis-only models, and rows skipped in that setting)."""
    extra = [
        f"{RESULTS}/scores/{key}/{shots}shot-{fmt}.parquet"
        for key in LAYER_MODELS
        for shots, fmt in LAYER_SETTINGS
        if key not in ROWS.evaluated(shots)
    ]
    return [f"{RESULTS}/tables/item_scores.parquet"] + extra


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
    tables = [f"{LAYER_DIR}/{name}" for name in ("group_sizes.csv", "mrd.csv", "similarity.csv")]
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
