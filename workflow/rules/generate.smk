# Prompts and generation. Local models run on GPU nodes (hf or vllm backend, GPUs, memory and runtime from
# the registry), reading weights offline from snapshots fetched on the submit host (download.smk); API
# models run on the submit host (it has internet; they need no GPU). Params carry what changes outputs:
# the model's registry entry digest, the settings and the code versions (xmrc.prompts, xmrc.generation), so a
# change re-runs only its jobs. A retry of a local generation job passes Snakemake's `attempt` as a resource
# (resources change no output; a param that changed with it would re-run finished jobs): on vLLM it gets more KV
# cache (CPU) or a smaller batch (GPU), and resumes from its shards (xmrc.backends.vllm).


rule prompts:
    input:
        unpack(model_inputs),
        unpack(demonstration_data),
        data=DATA_TABLE,
    output:
        f"{RESULTS}/prompts/{{model}}/{{shots}}shot-{{fmt}}.parquet",
    log:
        f"logs/{RUN}/prompts/{{model}}/{{shots}}shot-{{fmt}}.log",
    conda:
        "../../envs/xmrc.yaml"
    resources:
        mem_mb=lambda wildcards, attempt: 4000 * attempt,
        runtime=lambda wildcards, attempt: 20 * attempt,
    params:
        registry=config["registry"],
        weights=weights_of,
        languages=PROMPT_LANGUAGES,
        demonstrations=" ".join(config["demonstrations"]),
        max_items=(f"--max-items {config['data']['max_items']}" if config["data"]["max_items"] else ""),
        ids=lambda wildcards, input: f"--ids {input.eval_ids}" if "eval_ids" in input.keys() else "",
        dataset=prompt_data_args,
        hub_cache=HUB_CACHE,
        protocol=PROMPT_PROTOCOL,
        model_entry=model_digest,
        code=PROMPTS_CODE,
        version=XMRC_VERSION,
    shell:
        "HF_HUB_OFFLINE=1 HF_HUB_CACHE={params.hub_cache} python -m xmrc prompts --data {input.data}"
        " --registry {params.registry} --model {wildcards.model} --weights {params.weights}"
        " --shots {wildcards.shots} --format {wildcards.fmt} --languages {params.languages}"
        " --demonstrations {params.demonstrations} {params.max_items} {params.ids}{params.dataset}"
        " {params.protocol} --out {output} > {log} 2>&1"


rule generate:
    input:
        unpack(generate_inputs),
        prompts=f"{RESULTS}/prompts/{{model}}/{{shots}}shot-{{fmt}}.parquet",
    output:
        f"{RESULTS}/generations/{{model}}/{{shots}}shot-{{fmt}}.parquet",
    log:
        f"logs/{RUN}/generations/{{model}}/{{shots}}shot-{{fmt}}.log",
    wildcard_constraints:
        model=model_key_pattern(LOCAL_MODELS),
    conda:
        "../../envs/vllm.yaml" if BACKENDS["local"] == "vllm" else "../../envs/xmrc.yaml"
    threads: 2
    resources:
        gpu=gpus_of,
        gpu_model=gpu_model_of,
        cpus_per_gpu=cpus_per_gpu_of,
        mem_mb=generation_mem_mb,
        runtime=generation_runtime,
        attempt=lambda wildcards, attempt: attempt,
    params:
        registry=config["registry"],
        weights=weights_of,
        snapshot=snapshot_arg,
        backend=BACKENDS["local"],
        order=BACKENDS["order"],
        max_new_tokens=config["generation"]["max_new_tokens"],
        batch_size=config["generation"]["batch_size"],
        dtype=config["generation"]["dtype"],
        chunk_size=config["generation"]["chunk_size"],
        vllm=VLLM_ENGINE_OPTIONS,
        # vLLM jobs run under backends.vllm.python (e.g. .venv-vllm/bin/python; `python` with --sdm conda)
        python=VLLM_PYTHON if BACKENDS["local"] == "vllm" else "python",
        hub_cache=HUB_CACHE,
        extraction=EXTRACTION,
        model_entry=model_digest,
        code=GENERATION_CODE,
        version=XMRC_VERSION,
    shell:
        "HF_HUB_OFFLINE=1 HF_HUB_CACHE={params.hub_cache} {params.python} -m xmrc generate-job"
        " --prompts {input.prompts} {params.extraction}"
        " --registry {params.registry} --model {wildcards.model} --weights {params.weights} {params.snapshot}"
        " --backend {params.backend} --order {params.order} --shots {wildcards.shots} --format {wildcards.fmt}"
        " --max-new-tokens {params.max_new_tokens} --batch-size {params.batch_size} --dtype {params.dtype}"
        " {params.vllm} --attempt {resources.attempt} --chunk-size {params.chunk_size} --out {output} > {log} 2>&1"


rule generate_api:
    input:
        prompts=f"{RESULTS}/prompts/{{model}}/{{shots}}shot-{{fmt}}.parquet",
    output:
        f"{RESULTS}/generations/{{model}}/{{shots}}shot-{{fmt}}.parquet",
    log:
        f"logs/{RUN}/generations/{{model}}/{{shots}}shot-{{fmt}}.log",
    wildcard_constraints:
        model=model_key_pattern(API_MODELS),
    localrule: True
    conda:
        "../../envs/xmrc.yaml"
    resources:
        gpu=0,
        mem_mb=generation_mem_mb,
        runtime=generation_runtime,
    params:
        registry=config["registry"],
        order=BACKENDS["order"],
        max_new_tokens=config["generation"]["max_new_tokens"],
        chunk_size=BACKENDS["api"]["chunk_size"],
        concurrency=BACKENDS["api"]["concurrency"],
        max_retries=BACKENDS["api"]["max_retries"],
        timeout=BACKENDS["api"]["timeout_s"],
        backoff=BACKENDS["api"]["backoff_s"],
        extraction=EXTRACTION,
        model_entry=model_digest,
        code=GENERATION_CODE,
        version=XMRC_VERSION,
    shell:
        "python -m xmrc generate-job --prompts {input.prompts} {params.extraction} --registry {params.registry}"
        " --model {wildcards.model} --backend api --order {params.order} --shots {wildcards.shots}"
        " --format {wildcards.fmt} --max-new-tokens {params.max_new_tokens} --chunk-size {params.chunk_size}"
        " --concurrency {params.concurrency} --max-retries {params.max_retries} --timeout {params.timeout}"
        " --backoff {params.backoff} --out {output} > {log} 2>&1"
