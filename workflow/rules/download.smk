# Downloads run on the submit host (compute nodes often have no internet): model snapshots into the shared
# cache (config backends.hub_cache) and the evaluated dataset (XQuAD, MLQA). GPU jobs then read them with HF_HUB_OFFLINE=1.
# HF_TOKEN (gated models) is read from the environment by the command; it never appears in params or logs.


localrules:
    xquad,


rule fetch_model:
    output:
        f"{HUB_CACHE}/stamps/{{model}}.json",
    log:
        f"logs/{RUN}/fetch/{{model}}.log",
    localrule: True
    conda:
        "../../envs/xmrc.yaml"
    params:
        registry=config["registry"],
        cache=lambda wildcards, output: os.path.dirname(os.path.dirname(output[0])),
        model_entry=model_digest,
    shell:
        "python -m xmrc fetch-model --registry {params.registry} --model {wildcards.model}"
        " --cache-dir {params.cache} --out {output} > {log} 2>&1"
