rule tiny_model:
    input:
        data=f"{RESULTS}/data/xquad.parquet",
    output:
        directory(f"{TINY_DIR}/{{model}}"),
    log:
        f"logs/{RUN}/tiny_models/{{model}}.log",
    params:
        registry=config["registry"],
    conda:
        "../../envs/xmrc.yaml"
    shell:
        "python -m xmrc tiny-model --registry {params.registry} --model {wildcards.model}"
        " --data {input.data} --out {output} > {log} 2>&1"
