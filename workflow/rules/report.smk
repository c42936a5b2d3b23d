rule tables:
    input:
        f"{RESULTS}/tables/direction_scores.csv",
    output:
        table_outputs(),
    log:
        f"logs/{RUN}/tables.log",
    conda:
        "../../envs/xmrc.yaml"
    params:
        format_criterion=config["tables"]["format_criterion"],
        format_choice=config["tables"]["format_choice"],
        summary_left_out=f"--not-in-summary {SUMMARY_LEFT_OUT}" if SUMMARY_LEFT_OUT else "",
        paper_rows=PAPER_ROWS_OPTION,
        out_dir=lambda wildcards, input: os.path.dirname(input[0]),
    shell:
        "python -m xmrc tables --direction-scores {input} --format-criterion {params.format_criterion}"
        " --format-choice {params.format_choice} {params.summary_left_out} {params.paper_rows}"
        " --out-dir {params.out_dir} > {log} 2>&1"


rule heatmap:
    input:
        f"{RESULTS}/tables/direction_scores.csv",
    output:
        report(
            f"{RESULTS}/figures/heatmap_f1_{{shots}}shot_{{scenario}}.png",
            caption="../report/heatmap.rst",
            category="Scores",
            subcategory="{shots}-shot",
            labels={"figure": "F1 heatmap", "scenario": "{scenario}", "shots": "{shots}"},
        ),
    log:
        f"logs/{RUN}/figures/heatmap_f1_{{shots}}shot_{{scenario}}.log",
    wildcard_constraints:
        scenario="en-x|x-x|x-y",
    conda:
        "../../envs/xmrc.yaml"
    params:
        format_criterion=config["tables"]["format_criterion"],
        format_choice=config["tables"]["format_choice"],
    shell:
        "python -m xmrc figures --direction-scores {input} --kind heatmap --shots {wildcards.shots}"
        " --scenario {wildcards.scenario} --format-criterion {params.format_criterion}"
        " --format-choice {params.format_choice} --out {output} > {log} 2>&1"


# With the intervals stage on (config key `intervals`), the bars get the error bars of its scenario intervals.
rule means_figure:
    input:
        **(
            {"intervals": f"{RESULTS}/tables/intervals/scenario_intervals.csv"}
            if config["intervals"]["enabled"]
            else {}
        ),
        scores=f"{RESULTS}/tables/direction_scores.csv",
    output:
        report(
            f"{RESULTS}/figures/means_{{shots}}shot.png",
            caption="../report/means.rst",
            category="Scores",
            subcategory="{shots}-shot",
            labels={"figure": "en-x vs x-x", "shots": "{shots}"},
        ),
    log:
        f"logs/{RUN}/figures/means_{{shots}}shot.log",
    conda:
        "../../envs/xmrc.yaml"
    params:
        format_criterion=config["tables"]["format_criterion"],
        format_choice=config["tables"]["format_choice"],
        intervals=lambda wildcards, input: f"--intervals {input.intervals}" if "intervals" in input.keys() else "",
    shell:
        "python -m xmrc figures --direction-scores {input.scores} --kind means --shots {wildcards.shots}"
        " --format-criterion {params.format_criterion} --format-choice {params.format_choice} {params.intervals}"
        " --out {output} > {log} 2>&1"


rule matrix_figure:
    input:
        f"{RESULTS}/tables/direction_scores.csv",
    output:
        report(
            f"{RESULTS}/figures/matrix_f1/{{model}}/{{shots}}shot-{{fmt}}.png",
            caption="../report/matrix.rst",
            category="Scores",
            subcategory="{shots}-shot",
            labels={"figure": "context x question F1", "model": "{model}", "setting": "{shots}-shot {fmt}"},
        ),
    log:
        f"logs/{RUN}/figures/matrix_f1/{{model}}/{{shots}}shot-{{fmt}}.log",
    conda:
        "../../envs/xmrc.yaml"
    params:
        name=lambda wildcards: model_of(wildcards).name,
    shell:
        "python -m xmrc figures --direction-scores {input} --kind matrix --model '{params.name}'"
        " --shots {wildcards.shots} --format {wildcards.fmt} --out {output} > {log} 2>&1"
