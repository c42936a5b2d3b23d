# Confidence intervals (config key `intervals`, off by default): bootstrap over the items of the run's item scores.
include: "intervals_common.smk"


rule intervals:
    input:
        f"{RESULTS}/tables/item_scores.parquet",
    output:
        interval_tables(),
    log:
        f"logs/{RUN}/intervals.log",
    conda:
        "../../envs/xmrc.yaml"
    params:
        registry=config["registry"],
        models=" ".join(ROWS.all),
        resamples=INTERVALS["resamples"],
        confidence=INTERVALS["confidence"],
        seed=INTERVALS["seed"],
        markdown="--markdown" if INTERVALS["markdown"] else "--no-markdown",
        format_criterion=config["tables"]["format_criterion"],
        format_choice=config["tables"]["format_choice"],
        out_dir=lambda wildcards, output: os.path.dirname(output[0]),
    shell:
        "python -m xmrc intervals --item-scores {input} --registry {params.registry} --models {params.models}"
        " --resamples {params.resamples} --confidence {params.confidence} --seed {params.seed} {params.markdown}"
        " --format-criterion {params.format_criterion} --format-choice {params.format_choice}"
        " --out-dir {params.out_dir} > {log} 2>&1"


rule intervals_figure:
    input:
        f"{INTERVALS_DIR}/direction_intervals.csv",
    output:
        report(
            f"{RESULTS}/figures/intervals_f1_{{shots}}shot.png",
            caption="../report/intervals.rst",
            category="Scores",
            subcategory="{shots}-shot",
            labels={"figure": "F1 with bootstrap intervals", "shots": "{shots}"},
        ),
    log:
        f"logs/{RUN}/figures/intervals_f1_{{shots}}shot.log",
    conda:
        "../../envs/xmrc.yaml"
    shell:
        "python -m xmrc intervals-figure --intervals {input} --shots {wildcards.shots} --out {output} > {log} 2>&1"
