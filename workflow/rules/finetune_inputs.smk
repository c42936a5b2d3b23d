# Stage 'finetune': constants and input functions of workflow/rules/finetune.smk.
import json

FT = config["finetune"]
FT_DATA = f"{RESULTS}/finetune/data"
FT_CONFIGS = f"{RESULTS}/finetune/configs"
FT_HELDOUT = f"{RESULTS}/finetune/heldout"
FT_WORK = "resources/finetune_work"  # LLaMA-Factory checkpoints: never a rule output, so a re-run resumes
TUNED = PLAN.tuned
# Pairs compared: both models selected. Bases of question-translation models are also scored on the held-out
# articles (the tuned model is evaluated on those only), by rule finetune_heldout_eval.
FT_COMPARED = PLAN.finetune_compared
FT_HELDOUT_BASES = PLAN.finetune_heldout_bases
FT_COMPARE_SHOTS = PLAN.finetune_compare_shots


def ft_base(key):
    return REGISTRY.get(TUNED[key].finetune["base"])


def ft_is_qt(key):
    return TUNED[key].finetune["dataset"] == "question_translation"


# Rule-level constraint of finetune_heldout_eval's {base} wildcard (never matches when there is none).
FT_BASE_PATTERN = "|".join(re.escape(key) for key in FT_HELDOUT_BASES) or "(?!)"


def ft_dataset(wildcards):
    if ft_is_qt(wildcards.model):
        return f"{FT_DATA}/{wildcards.model}/qt_pairs.parquet"
    return f"{FT_DATA}/tulu3.parquet"


def ft_base_inputs(wildcards):
    """Locally built base weights (tiny, converted from a package's GGUF, or another finetune) are inputs; hub
    weights are fetched by the job."""
    base = ft_base(wildcards.model)
    if base.source in BUILT_SOURCES:
        return {"base": model_weights(base, TINY_DIR, FINETUNE_DIR)}
    return {}


def ft_gpus(wildcards):
    return scheduling.finetune_gpus(TUNED[wildcards.model])


def ft_threads(wildcards):
    return scheduling.finetune_threads(TUNED[wildcards.model])


def ft_mem_mb(wildcards):
    return scheduling.finetune_mem_mb(TUNED[wildcards.model])


def ft_runtime(wildcards):
    return scheduling.finetune_runtime_min(TUNED[wildcards.model])


def ft_hyperparameters(wildcards):
    return json.dumps(FT[TUNED[wildcards.model].finetune["method"]], sort_keys=True)


def ft_heldout_model(wildcards):
    return REGISTRY.get(wildcards.base)


def ft_heldout_inputs(wildcards):
    """Like generate's: built or converted weights, and on vLLM the converted tokenizer's check."""
    base = ft_heldout_model(wildcards)
    inputs = {}
    if base.source in BUILT_SOURCES:
        inputs["weights"] = model_weights(base, TINY_DIR, FINETUNE_DIR)
    if BACKENDS["local"] == "vllm":
        inputs.update(vllm_model_inputs(base))
    return inputs


def ft_qt_sources(wildcards):
    return " ".join(TUNED[wildcards.model].finetune["sources"])


def ft_qt_target(wildcards):
    return TUNED[wildcards.model].finetune.get("target", "en")


def ft_qt_origin():
    qt = FT["question_translation"]
    options = "" if qt["xquad_pairs"] else "--no-xquad"
    if qt["external_file"]:
        options += f" --external {qt['external_file']}"
    return options.strip()


def ft_comparison_tables():
    stems = [f"comparison_{shots}shot" for shots in FT_COMPARE_SHOTS] + [
        f"comparison_f1_{shots}shot_{scenario}" for shots in FT_COMPARE_SHOTS for scenario in ("en-x", "x-x")
    ]
    return [f"{RESULTS}/tables/finetune/{stem}.{ext}" for stem in stems for ext in ("csv", "md")]


def ft_heldout_scores():
    return [
        f"{FT_HELDOUT}/scores/{base}/{shots}shot-{fmt}.parquet" for base in FT_HELDOUT_BASES for shots, fmt in SETTINGS
    ]
