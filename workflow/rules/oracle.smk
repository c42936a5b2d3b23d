# Stage 'oracle': estimated oracle retrieval (paper Table 3) by sentence-ablation attribution.
# sentence units (model-free) -> one attribution job per model (GPU) -> tables -> figure.


include: "oracle_common.smk"


rule oracle_sentences:
    input:
        f"{RESULTS}/data/xquad.parquet",
    output:
        units=f"{RESULTS}/oracle/sentence_units.parquet",
        problems=f"{RESULTS}/oracle/sentence_problems.csv",
    log:
        f"logs/{RUN}/oracle/sentence_units.log",
    conda:
        "../../envs/xmrc.yaml"
    params:
        version=XMRC_VERSION,
    shell:
        "python -m xmrc oracle-sentences --data {input} --languages en --out {output.units}"
        " --problems {output.problems} > {log} 2>&1"


rule oracle_attribution:
    input:
        unpack(model_inputs),
        units=f"{RESULTS}/oracle/sentence_units.parquet",
        summary=f"{RESULTS}/tables/summary_{ORACLE['shots']}shot.csv",
        prompts=lambda wildcards: oracle_setting_files("prompts")(wildcards).values(),
        generations=lambda wildcards: oracle_setting_files("generations")(wildcards).values(),
    output:
        f"{RESULTS}/oracle/{{model}}/attributions.parquet",
    log:
        f"logs/{RUN}/oracle/{{model}}/attributions.log",
    conda:
        "../../envs/xmrc.yaml"
    threads: 2
    resources:
        gpu=gpus_of,
    params:
        registry=config["registry"],
        weights=weights_of,
        prompts=lambda wildcards: format_pairs(oracle_setting_files("prompts")(wildcards)),
        generations=lambda wildcards: format_pairs(oracle_setting_files("generations")(wildcards)),
        shots=ORACLE["shots"],
        languages=" ".join(ORACLE_QUESTION_LANGUAGES),
        sample_size=(f"--sample-size {ORACLE['sample_size']}" if ORACLE["sample_size"] else ""),
        seed=ORACLE["seed"],
        implementation=ORACLE["implementation"],
        batch_size=ORACLE["batch_size"],
        chunk_size=ORACLE["chunk_size"],
        generation_batch_size=config["generation"]["batch_size"],
        max_new_tokens=config["generation"]["max_new_tokens"],
        dtype=config["generation"]["dtype"],
        target=f"{EXTRACTION} --sequence-target {PROTOCOL['oracle_sequence']}",
        step=PROTOCOL["oracle_step"],
        version=XMRC_VERSION,
    shell:
        "python -m xmrc oracle-attribute --units {input.units} --summary {input.summary} {params.target}"
        " --step-target {params.step}"
        " --prompts {params.prompts} --generations {params.generations} --registry {params.registry}"
        " --model {wildcards.model} --weights {params.weights} --shots {params.shots}"
        " --question-languages {params.languages} {params.sample_size} --seed {params.seed}"
        " --implementation {params.implementation} --batch-size {params.batch_size}"
        " --generation-batch-size {params.generation_batch_size} --max-new-tokens {params.max_new_tokens}"
        " --dtype {params.dtype} --chunk-size {params.chunk_size} --out {output} > {log} 2>&1"


rule oracle_tables:
    input:
        attributions=expand(f"{RESULTS}/oracle/{{model}}/attributions.parquet", model=ORACLE_MODELS),
        item_scores=f"{RESULTS}/tables/item_scores.parquet",
    output:
        expand(
            f"{RESULTS}/tables/oracle_{{stem}}.{{ext}}",
            stem=["summary", "step_en-x", "sequence_en-x"],
            ext=["csv", "md"],
        ),
        accuracy=f"{RESULTS}/tables/oracle_vs_f1.csv",
    log:
        f"logs/{RUN}/oracle/tables.log",
    conda:
        "../../envs/xmrc.yaml"
    params:
        out_dir=lambda wildcards, output: os.path.dirname(output.accuracy),
        item_set=PROTOCOL["oracle_items"],
    shell:
        "python -m xmrc oracle-tables --attributions {input.attributions} --item-scores {input.item_scores}"
        " --items {params.item_set} --out-dir {params.out_dir} > {log} 2>&1"


rule oracle_figure:
    input:
        f"{RESULTS}/tables/oracle_vs_f1.csv",
    output:
        report(
            f"{RESULTS}/figures/oracle_vs_f1.png",
            caption="../report/oracle.rst",
            category="Oracle",
            labels={"figure": "oracle accuracy vs F1"},
        ),
    log:
        f"logs/{RUN}/oracle/figure.log",
    conda:
        "../../envs/xmrc.yaml"
    shell:
        "python -m xmrc oracle-figure --accuracy {input} --out {output} > {log} 2>&1"
