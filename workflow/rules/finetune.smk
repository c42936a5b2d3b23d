# Stage 'finetune': LLaMA-Factory training of the selected `source: finetune` models (TULU-3 full SFT,
# question-translation LoRA), whose weights model_inputs() makes an input of their prompts/generate jobs, so
# the DAG trains first and then evaluates them like any model; and the base-vs-tuned comparison.
import json

FT = config["finetune"]
FT_DATA = f"{RESULTS}/finetune/data"
FT_CONFIGS = f"{RESULTS}/finetune/configs"
FT_HELDOUT = f"{RESULTS}/finetune/heldout"
FT_WORK = "resources/finetune_work"  # LLaMA-Factory checkpoints: never a rule output, so a re-run resumes
TUNED = {key: model for key, model in MODELS.items() if model.source == "finetune"}


def ft_base(key):
    return REGISTRY.get(TUNED[key].finetune["base"])


def ft_is_qt(key):
    return TUNED[key].finetune["dataset"] == "question_translation"


for _key in TUNED:
    if ft_base(_key).source == "tiny" and ft_base(_key).key not in MODELS:
        raise WorkflowError(
            f"model '{_key}': its base '{ft_base(_key).key}' is a tiny model; add it to `models:` so it is built"
        )

# Pairs compared: both models selected. Bases of question-translation models are also scored on the held-out
# articles (the tuned model is evaluated on those only), by the three heldout_* rules below.
FT_COMPARED = [key for key in TUNED if ft_base(key).key in MODELS]
FT_HELDOUT_BASES = sorted({ft_base(key).key for key in FT_COMPARED if ft_is_qt(key)})
# Rule-level constraint of the heldout_* rules' {base} wildcard (never matches when there is none).
FT_BASE_PATTERN = "|".join(re.escape(key) for key in FT_HELDOUT_BASES) or "(?!)"


def ft_dataset(wildcards):
    if ft_is_qt(wildcards.model):
        return f"{FT_DATA}/{wildcards.model}/qt_pairs.parquet"
    return f"{FT_DATA}/tulu3.parquet"


def ft_base_inputs(wildcards):
    """Locally built base weights (tiny, or another finetune) are inputs; hub weights are fetched by the job."""
    base = ft_base(wildcards.model)
    if base.source in ("tiny", "finetune"):
        return {"base": model_weights(base, TINY_DIR, FINETUNE_DIR)}
    return {}


def ft_gpus(wildcards):
    return TUNED[wildcards.model].finetune.get("gpus", 1)


def ft_mem_mb(wildcards):
    return 1024 * TUNED[wildcards.model].finetune.get("mem_gb", 64)


def ft_runtime(wildcards):
    return int(60 * TUNED[wildcards.model].finetune.get("runtime_h", 24))


def ft_hyperparameters(wildcards):
    return json.dumps(FT[TUNED[wildcards.model].finetune["method"]], sort_keys=True)


def ft_heldout_model(wildcards):
    return REGISTRY.get(wildcards.base)


def ft_heldout_inputs(wildcards):
    base = ft_heldout_model(wildcards)
    if base.source in ("tiny", "finetune"):
        return {"weights": model_weights(base, TINY_DIR, FINETUNE_DIR)}
    return {}


def ft_qt_sources(wildcards):
    return " ".join(TUNED[wildcards.model].finetune["sources"])


def ft_qt_target(wildcards):
    return TUNED[wildcards.model].finetune.get("target", "en")


def ft_qt_origin():
    qt = FT["question_translation"]
    options = "" if qt["xquad_pairs"] else "--no-xquad"
    if qt["external_file"]:
        options += f" --external {qt['external_file']}"
    return options.strip()


def ft_comparison_tables():
    stems = [f"comparison_{shots}shot" for shots in config["shots"]] + [
        f"comparison_f1_{shots}shot_{scenario}" for shots in config["shots"] for scenario in ("en-x", "x-x")
    ]
    return [f"{RESULTS}/tables/finetune/{stem}.{ext}" for stem in stems for ext in ("csv", "md")]


def ft_heldout_scores():
    return [
        f"{FT_HELDOUT}/scores/{base}/{shots}shot-{fmt}.parquet"
        for base in FT_HELDOUT_BASES
        for shots, fmt in SETTINGS
    ]


rule finetune_tulu:
    input:
        [FT["tulu"]["local_file"]] if FT["tulu"]["source"] == "local" else [],
    output:
        table=f"{FT_DATA}/tulu3.parquet",
        problems=f"{FT_DATA}/tulu3_problems.csv",
    log:
        f"logs/{RUN}/finetune/tulu3.log",
    params:
        source=FT["tulu"]["source"],
        origin=(
            f"--local-file {FT['tulu']['local_file']}"
            if FT["tulu"]["source"] == "local"
            else f"--hub-id {FT['tulu']['hub_id']}"
            + (f" --revision {FT['tulu']['revision']}" if FT["tulu"]["revision"] else "")
        ),
        subsample=(
            f"--max-conversations {FT['tulu']['max_conversations']}"
            if FT["tulu"]["max_conversations"]
            else ""
        ),
        seed=FT["tulu"]["seed"],
    conda:
        "../../envs/train.yaml"
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
    params:
        eval_fraction=FT["question_translation"]["eval_fraction"],
        seed=FT["question_translation"]["seed"],
        demonstrations=" ".join(config["demonstrations"]),
    conda:
        "../../envs/xmrc.yaml"
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
    params:
        sources=ft_qt_sources,
        target=ft_qt_target,
        max_pairs=FT["question_translation"]["max_pairs_per_source"] or 10**9,
        seed=FT["question_translation"]["seed"],
        # A function, so Snakemake leaves the template's {target} and {question} alone.
        instruction=lambda wildcards: FT["question_translation"]["instruction"],
        origin=ft_qt_origin(),
    conda:
        "../../envs/xmrc.yaml"
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
    params:
        registry=config["registry"],
        hyperparameters=ft_hyperparameters,
        work_dir=f"{FT_WORK}/{{model}}",
        out_dir=lambda wildcards, output: os.path.dirname(output.train),
        version=XMRC_VERSION,
    conda:
        "../../envs/xmrc.yaml"
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
    params:
        gpus=ft_gpus,
    conda:
        "../../envs/train.yaml"
    threads: 2
    resources:
        gpu=ft_gpus,
        mem_mb=ft_mem_mb,
        runtime=ft_runtime,
    shell:
        "python -m xmrc finetune-train --train-config {input.train} --gpus {params.gpus} --out {output}"
        " > {log} 2>&1"


rule finetune_heldout_prompts:
    input:
        unpack(ft_heldout_inputs),
        data=f"{RESULTS}/data/xquad.parquet",
        ids=f"{FT_DATA}/heldout_ids.txt",
    output:
        f"{FT_HELDOUT}/prompts/{{base}}/{{shots}}shot-{{fmt}}.parquet",
    wildcard_constraints:
        base=FT_BASE_PATTERN,
    log:
        f"logs/{RUN}/finetune/heldout/prompts/{{base}}/{{shots}}shot-{{fmt}}.log",
    params:
        registry=config["registry"],
        weights=lambda wildcards: model_weights(ft_heldout_model(wildcards), TINY_DIR, FINETUNE_DIR),
        languages=" ".join(LANGS),
        demonstrations=" ".join(config["demonstrations"]),
        max_items=(
            f"--max-items {config['data']['max_items']}" if config["data"]["max_items"] else ""
        ),
        version=XMRC_VERSION,
    conda:
        "../../envs/xmrc.yaml"
    shell:
        "python -m xmrc prompts --data {input.data} --registry {params.registry} --model {wildcards.base}"
        " --weights {params.weights} --shots {wildcards.shots} --format {wildcards.fmt}"
        " --languages {params.languages} --demonstrations {params.demonstrations} {params.max_items}"
        " --ids {input.ids} --out {output} > {log} 2>&1"


rule finetune_heldout_generate:
    input:
        unpack(ft_heldout_inputs),
        prompts=f"{FT_HELDOUT}/prompts/{{base}}/{{shots}}shot-{{fmt}}.parquet",
    output:
        f"{FT_HELDOUT}/generations/{{base}}/{{shots}}shot-{{fmt}}.parquet",
    wildcard_constraints:
        base=FT_BASE_PATTERN,
    log:
        f"logs/{RUN}/finetune/heldout/generations/{{base}}/{{shots}}shot-{{fmt}}.log",
    params:
        registry=config["registry"],
        weights=lambda wildcards: model_weights(ft_heldout_model(wildcards), TINY_DIR, FINETUNE_DIR),
        max_new_tokens=config["generation"]["max_new_tokens"],
        batch_size=config["generation"]["batch_size"],
        dtype=config["generation"]["dtype"],
        chunk_size=config["generation"]["chunk_size"],
        version=XMRC_VERSION,
    conda:
        "../../envs/xmrc.yaml"
    threads: 2
    resources:
        gpu=lambda wildcards: ft_heldout_model(wildcards).gpus,
    shell:
        "python -m xmrc generate --prompts {input.prompts} --registry {params.registry}"
        " --model {wildcards.base} --weights {params.weights} --shots {wildcards.shots}"
        " --format {wildcards.fmt} --max-new-tokens {params.max_new_tokens} --batch-size {params.batch_size}"
        " --dtype {params.dtype} --chunk-size {params.chunk_size} --out {output} > {log} 2>&1"


rule finetune_heldout_score:
    input:
        f"{FT_HELDOUT}/generations/{{base}}/{{shots}}shot-{{fmt}}.parquet",
    output:
        f"{FT_HELDOUT}/scores/{{base}}/{{shots}}shot-{{fmt}}.parquet",
    wildcard_constraints:
        base=FT_BASE_PATTERN,
    log:
        f"logs/{RUN}/finetune/heldout/scores/{{base}}/{{shots}}shot-{{fmt}}.log",
    params:
        normalization=config["scoring"]["normalization"],
        version=XMRC_VERSION,
    conda:
        "../../envs/xmrc.yaml"
    shell:
        "python -m xmrc score --generations {input} --normalization {params.normalization}"
        " --out {output} > {log} 2>&1"


rule finetune_compare:
    input:
        item_scores=f"{RESULTS}/tables/item_scores.parquet",
        heldout=ft_heldout_scores(),
    output:
        ft_comparison_tables(),
    log:
        f"logs/{RUN}/finetune/comparison.log",
    params:
        registry=config["registry"],
        tuned=" ".join(FT_COMPARED),
        shots=" ".join(str(shots) for shots in config["shots"]),
        out_dir=f"{RESULTS}/tables/finetune",
    conda:
        "../../envs/xmrc.yaml"
    shell:
        "python -m xmrc finetune-compare --item-scores {input.item_scores} --heldout-scores {input.heldout}"
        " --registry {params.registry} --tuned {params.tuned} --shots {params.shots}"
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
    params:
        table_dir=f"{RESULTS}/tables/finetune",
    conda:
        "../../envs/xmrc.yaml"
    shell:
        "python -m xmrc finetune-figure --table-dir {params.table_dir} --shots {wildcards.shots}"
        " --out {output} > {log} 2>&1"


if FT["enabled"] and FT_COMPARED:
    EXTRA_TARGETS.extend(ft_comparison_tables())
    EXTRA_TARGETS.extend(f"{RESULTS}/figures/finetune_comparison_{shots}shot.png" for shots in config["shots"])
