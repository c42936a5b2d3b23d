# Stage 'finetune': LLaMA-Factory training of the selected `source: finetune` models (TULU-3 full SFT,
# question-translation LoRA), whose weights model_inputs() makes an input of their prompts/generate jobs, so
# the DAG trains first and then evaluates them like any model; and the base-vs-tuned comparison.


include: "finetune_inputs.smk"


rule finetune_tulu:
    input:
        [FT["tulu"]["local_file"]] if FT["tulu"]["source"] == "local" else [],
    output:
        table=f"{FT_DATA}/tulu3.parquet",
        problems=f"{FT_DATA}/tulu3_problems.csv",
    log:
        f"logs/{RUN}/finetune/tulu3.log",
    conda:
        "../../envs/train.yaml"
    params:
        source=FT["tulu"]["source"],
        origin=(
            f"--local-file {FT['tulu']['local_file']}"
            if FT["tulu"]["source"] == "local"
            else f"--hub-id {FT['tulu']['hub_id']}"
            + (f" --revision {FT['tulu']['revision']}" if FT["tulu"]["revision"] else "")
        ),
        subsample=(f"--max-conversations {FT['tulu']['max_conversations']}" if FT["tulu"]["max_conversations"] else ""),
        seed=FT["tulu"]["seed"],
    shell:
        "python -m xmrc finetune-tulu --source {params.source} {params.origin} {params.subsample}"
        " --seed {params.seed} --out {output.table} --problems {output.problems} > {log} 2>&1"


rule finetune_split:
    input:
        f"{RESULTS}/data/xquad.parquet",
    output:
        split=f"{FT_DATA}/article_split.csv",
        ids=f"{FT_DATA}/heldout_ids.txt",
    log:
        f"logs/{RUN}/finetune/article_split.log",
    conda:
        "../../envs/xmrc.yaml"
    params:
        eval_fraction=FT["question_translation"]["eval_fraction"],
        seed=FT["question_translation"]["seed"],
        demonstrations=" ".join(config["demonstrations"]),
    shell:
        "python -m xmrc finetune-split --data {input} --eval-fraction {params.eval_fraction}"
        " --seed {params.seed} --demonstrations {params.demonstrations} --out-split {output.split}"
        " --out-ids {output.ids} > {log} 2>&1"


rule finetune_qt_pairs:
    input:
        data=f"{RESULTS}/data/xquad.parquet",
        split=f"{FT_DATA}/article_split.csv",
        external=[FT["question_translation"]["external_file"] or []],
    output:
        f"{FT_DATA}/{{model}}/qt_pairs.parquet",
    log:
        f"logs/{RUN}/finetune/{{model}}/qt_pairs.log",
    conda:
        "../../envs/xmrc.yaml"
    params:
        sources=ft_qt_sources,
        target=ft_qt_target,
        max_pairs=FT["question_translation"]["max_pairs_per_source"] or 10**9,
        seed=FT["question_translation"]["seed"],
        # A function, so Snakemake leaves the template's {target} and {question} alone.
        instruction=lambda wildcards: FT["question_translation"]["instruction"],
        origin=ft_qt_origin(),
    shell:
        "python -m xmrc finetune-qt-pairs --data {input.data} --split {input.split} --sources {params.sources}"
        " --target {params.target} --max-pairs-per-source {params.max_pairs} --seed {params.seed}"
        " --instruction {params.instruction:q} {params.origin} --out {output} > {log} 2>&1"


rule finetune_config:
    input:
        dataset=ft_dataset,
    output:
        train=f"{FT_CONFIGS}/{{model}}/train.yaml",
        dataset_info=f"{FT_CONFIGS}/{{model}}/dataset_info.json",
    log:
        f"logs/{RUN}/finetune/{{model}}/config.log",
    conda:
        "../../envs/xmrc.yaml"
    params:
        registry=config["registry"],
        hyperparameters=ft_hyperparameters,
        work_dir=f"{FT_WORK}/{{model}}",
        out_dir=lambda wildcards, output: os.path.dirname(output.train),
        version=XMRC_VERSION,
    shell:
        "python -m xmrc finetune-config --registry {params.registry} --model {wildcards.model}"
        " --hyperparameters {params.hyperparameters:q} --dataset {input.dataset}"
        " --work-dir {params.work_dir} --out-dir {params.out_dir} > {log} 2>&1"


rule finetune_train:
    input:
        unpack(ft_base_inputs),
        train=f"{FT_CONFIGS}/{{model}}/train.yaml",
        dataset_info=f"{FT_CONFIGS}/{{model}}/dataset_info.json",
        dataset=ft_dataset,
    output:
        directory(f"{FINETUNE_DIR}/{{model}}"),
    log:
        f"logs/{RUN}/finetune/{{model}}/train.log",
    conda:
        "../../envs/train.yaml"
    threads: ft_threads
    resources:
        gpu=ft_gpus,
        mem_mb=ft_mem_mb,
        runtime=ft_runtime,
    params:
        gpus=ft_gpus,
    shell:
        "python -m xmrc finetune-train --train-config {input.train} --gpus {params.gpus} --out {output}" " > {log} 2>&1"


rule finetune_heldout_eval:
    input:
        unpack(ft_heldout_inputs),
        data=f"{RESULTS}/data/xquad.parquet",
        ids=f"{FT_DATA}/heldout_ids.txt",
    output:
        [f"{FT_HELDOUT}/scores/{{base}}/{shots}shot-{fmt}.parquet" for shots, fmt in SETTINGS],
    log:
        f"logs/{RUN}/finetune/heldout/{{base}}.log",
    wildcard_constraints:
        base=FT_BASE_PATTERN,
    conda:
        "../../envs/vllm.yaml" if BACKENDS["local"] == "vllm" else "../../envs/xmrc.yaml"
    threads: 2
    resources:
        gpu=lambda wildcards: ft_heldout_model(wildcards).gpus,
    params:
        registry=config["registry"],
        weights=lambda wildcards: model_weights(ft_heldout_model(wildcards), TINY_DIR, FINETUNE_DIR),
        settings=" ".join(f"{shots}:{fmt}" for shots, fmt in SETTINGS),
        languages=" ".join(LANGS),
        demonstrations=" ".join(config["demonstrations"]),
        max_items=(f"--max-items {config['data']['max_items']}" if config["data"]["max_items"] else ""),
        max_new_tokens=config["generation"]["max_new_tokens"],
        batch_size=config["generation"]["batch_size"],
        dtype=config["generation"]["dtype"],
        chunk_size=config["generation"]["chunk_size"],
        normalization=config["scoring"]["normalization"],
        out_dir=lambda wildcards, output: str(Path(output[0]).parents[2]),
        # the main generation jobs' backend, so base and tuned models are compared on the same engine
        backend=BACKENDS["local"],
        vllm=VLLM_ENGINE_OPTIONS,
        python=VLLM_PYTHON if BACKENDS["local"] == "vllm" else "python",
        protocol=f"{PROMPT_PROTOCOL} {EXTRACTION}",
        version=XMRC_VERSION,
    shell:
        "{params.python} -m xmrc finetune-heldout-eval --data {input.data} --registry {params.registry}"
        " {params.protocol}"
        " --model {wildcards.base} --weights {params.weights} --ids {input.ids} --settings {params.settings}"
        " --languages {params.languages} --demonstrations {params.demonstrations} {params.max_items}"
        " --max-new-tokens {params.max_new_tokens} --batch-size {params.batch_size} --dtype {params.dtype}"
        " --chunk-size {params.chunk_size} --backend {params.backend} {params.vllm}"
        " --normalization {params.normalization} --out-dir {params.out_dir} > {log} 2>&1"


rule finetune_compare:
    input:
        item_scores=f"{RESULTS}/tables/item_scores.parquet",
        heldout=ft_heldout_scores(),
    output:
        ft_comparison_tables(),
    log:
        f"logs/{RUN}/finetune/comparison.log",
    conda:
        "../../envs/xmrc.yaml"
    params:
        registry=config["registry"],
        tuned=" ".join(FT_COMPARED),
        shots=" ".join(str(shots) for shots in FT_COMPARE_SHOTS),
        format_criterion=config["tables"]["format_criterion"],
        format_choice=config["tables"]["format_choice"],
        out_dir=lambda wildcards, output: os.path.dirname(output[0]),
    shell:
        "python -m xmrc finetune-compare --item-scores {input.item_scores} --heldout-scores {input.heldout}"
        " --registry {params.registry} --tuned {params.tuned} --shots {params.shots}"
        " --format-criterion {params.format_criterion} --format-choice {params.format_choice}"
        " --out-dir {params.out_dir} > {log} 2>&1"


rule finetune_figure:
    input:
        ft_comparison_tables(),
    output:
        report(
            f"{RESULTS}/figures/finetune_comparison_{{shots}}shot.png",
            caption="../report/finetune_comparison.rst",
            category="Finetuning",
            subcategory="{shots}-shot",
            labels={"figure": "base vs tuned", "shots": "{shots}"},
        ),
    log:
        f"logs/{RUN}/figures/finetune_comparison_{{shots}}shot.log",
    conda:
        "../../envs/xmrc.yaml"
    params:
        table_dir=lambda wildcards, input: os.path.dirname(input[0]),
    shell:
        "python -m xmrc finetune-figure --table-dir {params.table_dir} --shots {wildcards.shots}"
        " --out {output} > {log} 2>&1"


if FT["enabled"] and FT_COMPARED and FT_COMPARE_SHOTS:
    EXTRA_TARGETS.extend(ft_comparison_tables())
    EXTRA_TARGETS.extend(f"{RESULTS}/figures/finetune_comparison_{shots}shot.png" for shots in FT_COMPARE_SHOTS)
