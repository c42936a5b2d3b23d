rule prompts:
    input:
        unpack(model_inputs),
        data=f"{RESULTS}/data/xquad.parquet",
    output:
        f"{RESULTS}/prompts/{{model}}/{{shots}}shot-{{fmt}}.parquet",
    log:
        f"logs/{RUN}/prompts/{{model}}/{{shots}}shot-{{fmt}}.log",
    params:
        registry=config["registry"],
        weights=weights_of,
        languages=" ".join(LANGS),
        demonstrations=" ".join(config["demonstrations"]),
        max_items=(
            f"--max-items {config['data']['max_items']}" if config["data"]["max_items"] else ""
        ),
        ids=lambda wildcards, input: f"--ids {input.eval_ids}" if "eval_ids" in input.keys() else "",
        version=XMRC_VERSION,
    conda:
        "../../envs/xmrc.yaml"
    shell:
        "python -m xmrc prompts --data {input.data} --registry {params.registry} --model {wildcards.model}"
        " --weights {params.weights} --shots {wildcards.shots} --format {wildcards.fmt}"
        " --languages {params.languages} --demonstrations {params.demonstrations} {params.max_items}"
        " {params.ids} --out {output} > {log} 2>&1"


rule generate:
    input:
        unpack(model_inputs),
        prompts=f"{RESULTS}/prompts/{{model}}/{{shots}}shot-{{fmt}}.parquet",
    output:
        f"{RESULTS}/generations/{{model}}/{{shots}}shot-{{fmt}}.parquet",
    log:
        f"logs/{RUN}/generations/{{model}}/{{shots}}shot-{{fmt}}.log",
    params:
        registry=config["registry"],
        weights=weights_of,
        max_new_tokens=config["generation"]["max_new_tokens"],
        batch_size=config["generation"]["batch_size"],
        dtype=config["generation"]["dtype"],
        chunk_size=config["generation"]["chunk_size"],
        version=XMRC_VERSION,
    threads: 2
    resources:
        gpu=gpus_of,
    conda:
        "../../envs/xmrc.yaml"
    shell:
        "python -m xmrc generate --prompts {input.prompts} --registry {params.registry}"
        " --model {wildcards.model} --weights {params.weights} --shots {wildcards.shots}"
        " --format {wildcards.fmt} --max-new-tokens {params.max_new_tokens} --batch-size {params.batch_size}"
        " --dtype {params.dtype} --chunk-size {params.chunk_size} --out {output} > {log} 2>&1"
