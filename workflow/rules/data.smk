# The evaluated dataset (config data.dataset; XQuAD for the paper) as one table, and for datasets whose
# demonstrations come from another split (MLQA: validation) that split's table too.


rule xquad:
    input:
        data_inputs(DATASET.evaluation_split),
    output:
        table=DATA_TABLE,
        problems=f"{RESULTS}/data/{DATASET.key}_problems.csv",
    log:
        f"logs/{RUN}/{DATASET.key}.log",
    conda:
        "../../envs/xmrc.yaml"
    params:
        source=config["data"]["source"],
        origin=data_origin(),
        languages=" ".join(LANGS),
    shell:
        "python -m xmrc data --source {params.source} {params.origin} --languages {params.languages}"
        " --out {output.table} --problems {output.problems} > {log} 2>&1"


if DEMONSTRATION_TABLE:

    rule demonstration_data:
        input:
            data_inputs(DATASET.demonstration_split),
        output:
            table=DEMONSTRATION_TABLE,
            problems=f"{RESULTS}/data/{DATASET.key}_{DATASET.demonstration_split}_problems.csv",
        log:
            f"logs/{RUN}/{DATASET.key}_{DATASET.demonstration_split}.log",
        localrule: True
        conda:
            "../../envs/xmrc.yaml"
        params:
            source=config["data"]["source"],
            origin=data_origin(),
            split=DATASET.demonstration_split,
            languages=" ".join(LANGS),
        shell:
            "python -m xmrc data --source {params.source} {params.origin} --split {params.split}"
            " --languages {params.languages} --out {output.table} --problems {output.problems} > {log} 2>&1"
