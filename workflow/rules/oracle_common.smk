# Targets and input functions of the oracle stage (included by oracle.smk). Rule bodies hold no logic.
ORACLE = config["oracle"]
ORACLE_MODELS = PLAN.oracle_models
ORACLE_QUESTION_LANGUAGES = PLAN.oracle_question_languages
if ORACLE["enabled"]:
    EXTRA_TARGETS += [
        *expand(
            f"{RESULTS}/tables/oracle_{{stem}}.{{ext}}",
            stem=["summary", "step_en-x", "sequence_en-x"],
            ext=["csv", "md"],
        ),
        f"{RESULTS}/tables/oracle_vs_f1.csv",
        f"{RESULTS}/figures/oracle_vs_f1.png",
    ]


def oracle_setting_files(kind):
    """prompts/generations of every prompt format of the oracle's shots, as FORMAT=PATH pairs' paths."""

    def files(wildcards):
        return {
            fmt: f"{RESULTS}/{kind}/{wildcards.model}/{ORACLE['shots']}shot-{fmt}.parquet"
            for fmt in config["prompt_formats"]
        }

    return files


def format_pairs(paths):
    return " ".join(f"{fmt}={path}" for fmt, path in paths.items())
