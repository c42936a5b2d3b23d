rule score:
    input:
        f"{RESULTS}/generations/{{model}}/{{shots}}shot-{{fmt}}.parquet",
    output:
        f"{RESULTS}/scores/{{model}}/{{shots}}shot-{{fmt}}.parquet",
    log:
        f"logs/{RUN}/scores/{{model}}/{{shots}}shot-{{fmt}}.log",
    conda:
        "../../envs/xmrc.yaml"
    params:
        normalization=config["scoring"]["normalization"],
        version=XMRC_VERSION,
    shell:
        "python -m xmrc score --generations {input} --normalization {params.normalization}"
        " --out {output} > {log} 2>&1"


rule direction_scores:
    input:
        expand(f"{RESULTS}/scores/{{stem}}.parquet", stem=job_stems()),
    output:
        csv=f"{RESULTS}/tables/direction_scores.csv",
        item_scores=f"{RESULTS}/tables/item_scores.parquet",
    log:
        f"logs/{RUN}/direction_scores.log",
    conda:
        "../../envs/xmrc.yaml"
    shell:
        "python -m xmrc aggregate --scores {input} --out-csv {output.csv} --out-items {output.item_scores}"
        " > {log} 2>&1"
