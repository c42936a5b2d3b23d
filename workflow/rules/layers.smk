# Stage 'layers': AttnLRP Major Relevance Depth and cross-lingual hidden-state similarity (paper Section 5).
# groups (per-item F1) -> relevance and pooled hidden states per model -> MRD / similarity tables -> figures.


include: "layers_common.smk"


wildcard_constraints:
    series="|".join(re.escape(name) for name in LAYER_SERIES) or "no-series",


rule layer_groups:
    input:
        layer_item_scores(),
    output:
        members=f"{LAYER_DIR}/groups.parquet",
        sizes=f"{LAYER_DIR}/group_sizes.csv",
    log:
        f"logs/{RUN}/layers/groups.log",
    conda:
        "../../envs/xmrc.yaml"
    params:
        registry=config["registry"],
        models=" ".join(LAYER_MODELS),
        shots=LAYERS["shots"],
        formats=" ".join(LAYERS["prompt_formats"]),
        format_criterion=config["tables"]["format_criterion"],
        format_choice=config["tables"]["format_choice"],
        languages=" ".join(LANGS),
        groups=" ".join(LAYERS["groups"]),
        cap=f"--cap {LAYERS['max_samples']}" if LAYERS["max_samples"] else "",
        seed=LAYERS["seed"],
    shell:
        "python -m xmrc layer-groups --item-scores {input} --registry {params.registry} --models {params.models}"
        " --shots {params.shots} --formats {params.formats} --format-criterion {params.format_criterion}"
        " --format-choice {params.format_choice} --languages {params.languages}"
        " --groups {params.groups} {params.cap} --seed {params.seed}"
        " --out-members {output.members} --out-sizes {output.sizes} > {log} 2>&1"


rule layer_relevance:
    input:
        unpack(model_inputs),
        prompts=lambda wildcards: layer_setting_files("prompts")(wildcards).values(),
        generations=lambda wildcards: layer_setting_files("generations")(wildcards).values(),
        groups=f"{LAYER_DIR}/groups.parquet",
    output:
        parts=f"{LAYER_DIR}/relevance/{{model}}/{{shots}}shot-{{fmt}}.parquet",
        tokens=f"{LAYER_DIR}/relevance/{{model}}/{{shots}}shot-{{fmt}}.tokens.parquet",
    log:
        f"logs/{RUN}/layers/relevance/{{model}}/{{shots}}shot-{{fmt}}.log",
    wildcard_constraints:
        fmt=LAYER_FORMAT,
    conda:
        "../../envs/lxt.yaml"
    threads: 2
    resources:
        gpu=gpus_of,
        mem_mb=layer_mem_mb,
    params:
        registry=config["registry"],
        weights=weights_of,
        prompts=layer_file_pairs("prompts"),
        generations=layer_file_pairs("generations"),
        languages=" ".join(LANGS),
        dtype=LAYERS["relevance"]["dtype"],
        batch_size=LAYERS["relevance"]["batch_size"],
        chunk_size=LAYERS["relevance"]["chunk_size"],
        examples=LAYERS["example_items"],
        extraction=EXTRACTION,
        mrd_relevance=PROTOCOL["mrd_relevance"],
        version=XMRC_VERSION,
        code=LAYER_CODE,
    shell:
        "python -m xmrc layer-relevance --prompts {params.prompts} --generations {params.generations}"
        " {params.extraction} --mrd-relevance {params.mrd_relevance}"
        " --groups {input.groups} --registry {params.registry} --model {wildcards.model}"
        " --weights {params.weights} --shots {wildcards.shots} --format {wildcards.fmt}"
        " --languages {params.languages} --dtype {params.dtype} --batch-size {params.batch_size}"
        " --chunk-size {params.chunk_size} --examples {params.examples} --out {output.parts}"
        " --out-tokens {output.tokens} > {log} 2>&1"


rule layer_hidden_states:
    input:
        unpack(model_inputs),
        prompts=lambda wildcards: layer_setting_files("prompts")(wildcards).values(),
        generations=lambda wildcards: layer_setting_files("generations")(wildcards).values(),
        groups=f"{LAYER_DIR}/groups.parquet",
    output:
        vectors=f"{LAYER_DIR}/hidden/{{model}}/{{shots}}shot-{{fmt}}.npy",
        index=f"{LAYER_DIR}/hidden/{{model}}/{{shots}}shot-{{fmt}}.parquet",
    log:
        f"logs/{RUN}/layers/hidden/{{model}}/{{shots}}shot-{{fmt}}.log",
    wildcard_constraints:
        fmt=LAYER_FORMAT,
    conda:
        "../../envs/xmrc.yaml"
    threads: 2
    resources:
        gpu=gpus_of,
        mem_mb=layer_mem_mb,
    params:
        registry=config["registry"],
        weights=weights_of,
        prompts=layer_file_pairs("prompts"),
        generations=layer_file_pairs("generations"),
        languages=" ".join(LANGS),
        dtype=LAYERS["hidden_states"]["dtype"],
        batch_size=LAYERS["hidden_states"]["batch_size"],
        chunk_size=LAYERS["hidden_states"]["chunk_size"],
        extraction=EXTRACTION,
        version=XMRC_VERSION,
        code=LAYER_CODE,
    shell:
        "python -m xmrc layer-hidden --prompts {params.prompts} --generations {params.generations}"
        " {params.extraction}"
        " --groups {input.groups}"
        " --registry {params.registry} --model {wildcards.model} --weights {params.weights}"
        " --shots {wildcards.shots} --format {wildcards.fmt} --languages {params.languages}"
        " --dtype {params.dtype} --batch-size {params.batch_size} --chunk-size {params.chunk_size}"
        " --out-vectors {output.vectors} --out-index {output.index} > {log} 2>&1"


rule layer_mrd:
    input:
        relevance=expand(f"{LAYER_DIR}/relevance/{{stem}}.parquet", stem=layer_stems()),
        groups=f"{LAYER_DIR}/groups.parquet",
    output:
        f"{LAYER_DIR}/mrd.csv",
    log:
        f"logs/{RUN}/layers/mrd.log",
    conda:
        "../../envs/xmrc.yaml"
    shell:
        "python -m xmrc layer-mrd --relevance {input.relevance} --groups {input.groups} --out {output}" " > {log} 2>&1"


rule layer_similarity:
    input:
        vectors=expand(f"{LAYER_DIR}/hidden/{{stem}}.npy", stem=layer_stems()),
        index=expand(f"{LAYER_DIR}/hidden/{{stem}}.parquet", stem=layer_stems()),
        groups=f"{LAYER_DIR}/groups.parquet",
    output:
        table=f"{LAYER_DIR}/similarity.csv",
        per_item=f"{LAYER_DIR}/similarity_items.parquet",
    log:
        f"logs/{RUN}/layers/similarity.log",
    conda:
        "../../envs/xmrc.yaml"
    shell:
        "python -m xmrc layer-similarity --vectors {input.vectors} --index {input.index}"
        " --groups {input.groups} --out {output.table} --out-items {output.per_item} > {log} 2>&1"


rule layer_figures:
    input:
        mrd=f"{LAYER_DIR}/mrd.csv",
        similarity=f"{LAYER_DIR}/similarity.csv",
        sizes=f"{LAYER_DIR}/group_sizes.csv",
    output:
        mrd_context_question=_layer_figure("mrd_context_question", "layers_mrd", {"figure": "MRD: context vs question"}),
        mrd_task_demos=_layer_figure(
            "mrd_task_demos", "layers_mrd", {"figure": "MRD: task description vs demonstrations"}
        ),
        similarity_question=_layer_figure(
            "similarity_question", "layers_similarity", {"figure": "similarity: question"}
        ),
        similarity_context=_layer_figure("similarity_context", "layers_similarity", {"figure": "similarity: context"}),
        similarity_last=_layer_figure(
            "similarity_last", "layers_similarity", {"figure": "similarity: last input token"}
        ),
    log:
        f"logs/{RUN}/layers/figures/{{model}}/{{shots}}shot-{{fmt}}.log",
    wildcard_constraints:
        fmt=LAYER_FORMAT,
    conda:
        "../../envs/xmrc.yaml"
    shell:
        "python -m xmrc layer-figures --mrd {input.mrd} --similarity {input.similarity} --sizes {input.sizes}"
        " --model {wildcards.model} --shots {wildcards.shots} --format {wildcards.fmt}"
        " --out-mrd-context-question {output.mrd_context_question} --out-mrd-task-demos {output.mrd_task_demos}"
        " --out-similarity-question {output.similarity_question}"
        " --out-similarity-context {output.similarity_context}"
        " --out-similarity-last {output.similarity_last} > {log} 2>&1"


rule layer_example_figure:
    input:
        f"{LAYER_DIR}/relevance/{{model}}/{{shots}}shot-{{fmt}}.tokens.parquet",
    output:
        _layer_figure("attribution_example", "layers_example", {"figure": "attribution example"}),
    log:
        f"logs/{RUN}/layers/figures/{{model}}/{{shots}}shot-{{fmt}}.example.log",
    wildcard_constraints:
        fmt=LAYER_FORMAT,
    conda:
        "../../envs/xmrc.yaml"
    params:
        top=3,
    shell:
        "python -m xmrc layer-example-figure --tokens {input} --top {params.top} --out {output} > {log} 2>&1"


rule layer_change_figures:
    input:
        similarity=f"{LAYER_DIR}/similarity.csv",
        sizes=f"{LAYER_DIR}/group_sizes.csv",
    output:
        question=_change_figure("question"),
        context=_change_figure("context"),
        last=_change_figure("last"),
    log:
        f"logs/{RUN}/layers/figures/change/{{series}}/{{shots}}shot-{{fmt}}.log",
    wildcard_constraints:
        fmt=LAYER_FORMAT,
    conda:
        "../../envs/xmrc.yaml"
    params:
        models=lambda wildcards: " ".join(LAYER_SERIES[wildcards.series]),
    shell:
        "python -m xmrc layer-change-figures --similarity {input.similarity} --sizes {input.sizes}"
        " --models {params.models}"
        " --shots {wildcards.shots} --format {wildcards.fmt} --out-question {output.question}"
        " --out-context {output.context} --out-last {output.last} > {log} 2>&1"
