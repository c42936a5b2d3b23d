# Config checks and input functions of the oracle stage (included by oracle.smk). Rule bodies hold no logic.
ORACLE = config["oracle"]


def _oracle_models():
    try:
        keys = [REGISTRY.get(name).key for name in ORACLE["models"]]
    except XmrcError as error:
        raise WorkflowError(f"config key 'oracle.models': {error}") from None
    # their generations and the format the summary table chose for them are needed
    absent = [key for key in keys if key not in ROWS.models or key not in ROWS.evaluated(ORACLE["shots"])]
    if absent:
        raise WorkflowError(f"config key 'oracle.models': {', '.join(absent)} not in 'models' or skipped at "
                            f"{ORACLE['shots']}-shot ('skip_models'): the oracle needs their generations and "
                            "summary row")
    return keys


def _oracle_question_languages():
    languages = [direction.split("-", 1)[1] for direction in ORACLE["directions"]]
    absent = [lang for lang in languages if lang not in LANGS]
    if absent:
        raise WorkflowError(f"config key 'oracle.directions': language(s) {', '.join(absent)} not in 'languages'")
    if "en-x" not in scenarios():
        raise WorkflowError(f"config key 'oracle.directions': the run has no en-x directions (config key "
                            f"'scenarios': {SCENARIOS})")
    return languages


if ORACLE["enabled"]:
    ORACLE_MODELS = _oracle_models()
    ORACLE_QUESTION_LANGUAGES = _oracle_question_languages()
    if ORACLE["shots"] not in config["shots"]:
        raise WorkflowError(f"config key 'oracle.shots': {ORACLE['shots']} not in 'shots' {config['shots']}")
    EXTRA_TARGETS += [
        *expand(f"{RESULTS}/tables/oracle_{{stem}}.{{ext}}", stem=["summary", "step_en-x", "sequence_en-x"],
                ext=["csv", "md"]),
        f"{RESULTS}/tables/oracle_vs_f1.csv",
        f"{RESULTS}/figures/oracle_vs_f1.png",
    ]
else:
    ORACLE_MODELS, ORACLE_QUESTION_LANGUAGES = [], []


def oracle_setting_files(kind):
    """prompts/generations of every prompt format of the oracle's shots, as FORMAT=PATH pairs' paths."""

    def files(wildcards):
        return {fmt: f"{RESULTS}/{kind}/{wildcards.model}/{ORACLE['shots']}shot-{fmt}.parquet"
                for fmt in config["prompt_formats"]}

    return files


def format_pairs(paths):
    return " ".join(f"{fmt}={path}" for fmt, path in paths.items())
