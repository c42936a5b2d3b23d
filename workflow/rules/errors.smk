# Stage 'errors': why answers are wrong. W (wrong answers of one shots setting and scenario) -> Lingua
# language errors and the LLM judge's verdicts -> Tables 7, 8, 9a-c, Table 2 (right half), a figure.
from xmrc.errors.rates import table_names

ERRORS = config["errors"]
ERRORS_TAG = f"{ERRORS['shots']}shot_{ERRORS['scenario']}"
ERRORS_DIR = f"{RESULTS}/errors/{ERRORS_TAG}"

ERRORS_JUDGE = PLAN.errors_judge
ERRORS_JUDGE_WEIGHTS = model_weights(ERRORS_JUDGE, TINY_DIR, FINETUNE_DIR)
ERRORS_JUDGE_VLLM = ERRORS["judge_backend"] == "vllm"
# The vLLM judge runs in the generation stage's vLLM environment (envs/vllm.yaml; backends.vllm.python).
ERRORS_JUDGE_ENV = f"../../envs/{'vllm' if ERRORS_JUDGE_VLLM else 'xmrc'}.yaml"
# A judge the workflow builds (tiny) or converts (gguf) has its weights as an input; on vLLM a converted judge's
# tokenizer is checked under the vLLM interpreter first. Hub judges are fetched by the job.
ERRORS_JUDGE_INPUTS = {
    **({"weights": ERRORS_JUDGE_WEIGHTS} if ERRORS_JUDGE.source in ("tiny", "gguf") else {}),
    **(vllm_model_inputs(ERRORS_JUDGE) if ERRORS_JUDGE_VLLM else {}),
}
# Every row evaluated in the errors' setting ('extra_models' too: Tables 7-9 have LLaMA-2-Chat-7B). 'best'
# needs both formats' generations: the choice is made on their scores.
ERRORS_STEMS = [
    f"{key}/{ERRORS['shots']}shot-{fmt}"
    for key in ROWS.evaluated(ERRORS["shots"])
    for fmt in (config["prompt_formats"] if ERRORS["prompt_format"] == "best" else [ERRORS["prompt_format"]])
]
ERRORS_TABLES = [
    f"{RESULTS}/tables/{name}" for name in table_names(ERRORS["shots"], ERRORS["scenario"], with_paper_rows=PAPER_ROWS)
]


rule wrong_answers:
    input:
        data=f"{RESULTS}/data/xquad.parquet",
        direction_scores=f"{RESULTS}/tables/direction_scores.csv",
        generations=expand(f"{RESULTS}/generations/{{stem}}.parquet", stem=ERRORS_STEMS),
        scores=expand(f"{RESULTS}/scores/{{stem}}.parquet", stem=ERRORS_STEMS),
    output:
        answers=f"{ERRORS_DIR}/wrong_answers.parquet",
        counts=f"{ERRORS_DIR}/wrong_counts.csv",
    log:
        f"logs/{RUN}/errors/{ERRORS_TAG}/wrong_answers.log",
    conda:
        "../../envs/xmrc.yaml"
    params:
        shots=ERRORS["shots"],
        scenario=ERRORS["scenario"],
        prompt_format=ERRORS["prompt_format"],
        format_criterion=config["tables"]["format_criterion"],
        format_choice=config["tables"]["format_choice"],
        metric=ERRORS["wrong_answer"]["metric"],
        max_score=ERRORS["wrong_answer"]["max_score"],
    shell:
        "python -m xmrc wrong-answers --data {input.data} --generations {input.generations}"
        " --scores {input.scores} --direction-scores {input.direction_scores} --shots {params.shots}"
        " --scenario {params.scenario} --prompt-format {params.prompt_format}"
        " --format-criterion {params.format_criterion} --format-choice {params.format_choice} --metric {params.metric}"
        " --max-score {params.max_score} --out {output.answers} --out-counts {output.counts} > {log} 2>&1"


rule language_errors:
    input:
        f"{ERRORS_DIR}/wrong_answers.parquet",
    output:
        f"{ERRORS_DIR}/language.parquet",
    log:
        f"logs/{RUN}/errors/{ERRORS_TAG}/language.log",
    conda:
        "../../envs/xmrc.yaml"
    threads: 2
    params:
        lingua=PROTOCOL["lingua_languages"],
    shell:
        "python -m xmrc detect-language --wrong-answers {input} --threads {threads}"
        " --lingua-languages {params.lingua} --out {output} > {log} 2>&1"


rule judge:
    input:
        unpack(lambda wildcards: ERRORS_JUDGE_INPUTS),
        answers=f"{ERRORS_DIR}/wrong_answers.parquet",
    output:
        f"{ERRORS_DIR}/judge.parquet",
    log:
        f"logs/{RUN}/errors/{ERRORS_TAG}/judge.log",
    conda:
        ERRORS_JUDGE_ENV
    threads: 2
    resources:
        gpu=lambda wildcards: ERRORS_JUDGE.gpus,
    params:
        registry=config["registry"],
        judge=ERRORS_JUDGE.key,
        weights=ERRORS_JUDGE_WEIGHTS,
        backend=ERRORS["judge_backend"],
        batch_size=ERRORS["batch_size"],
        chunk_size=ERRORS["chunk_size"],
        dtype=config["generation"]["dtype"],
        python=VLLM_PYTHON if ERRORS_JUDGE_VLLM else "python",
        layout=PROTOCOL["layout"],
        version=XMRC_VERSION,
    shell:
        "{params.python} -m xmrc judge --wrong-answers {input.answers} --registry {params.registry}"
        " --model {params.judge} --layout {params.layout}"
        " --weights {params.weights} --backend {params.backend} --batch-size {params.batch_size}"
        " --chunk-size {params.chunk_size} --dtype {params.dtype} --out {output} > {log} 2>&1"


rule error_tables:
    input:
        counts=f"{ERRORS_DIR}/wrong_counts.csv",
        answers=f"{ERRORS_DIR}/wrong_answers.parquet",
        language=f"{ERRORS_DIR}/language.parquet",
        judge=f"{ERRORS_DIR}/judge.parquet",
    output:
        tables=ERRORS_TABLES,
        typed=f"{ERRORS_DIR}/typed_answers.parquet",
    log:
        f"logs/{RUN}/errors/{ERRORS_TAG}/tables.log",
    conda:
        "../../envs/xmrc.yaml"
    params:
        shots=ERRORS["shots"],
        scenario=ERRORS["scenario"],
        summary_left_out=f"--not-in-summary {SUMMARY_LEFT_OUT}" if SUMMARY_LEFT_OUT else "",
        paper_rows=PAPER_ROWS_OPTION,
        out_dir=lambda wildcards, output: os.path.dirname(output.tables[0]),
    shell:
        "python -m xmrc error-tables --counts {input.counts} --wrong-answers {input.answers}"
        " --language {input.language} --judge {input.judge} --shots {params.shots} --scenario {params.scenario}"
        " {params.summary_left_out} {params.paper_rows} --out-dir {params.out_dir} --out-items {output.typed}"
        " > {log} 2>&1"


rule error_figure:
    input:
        f"{ERRORS_DIR}/typed_answers.parquet",
    output:
        report(
            f"{RESULTS}/figures/error_types_{ERRORS_TAG}.png",
            caption="../report/error_types.rst",
            category="Errors",
            labels={"figure": "error types", "setting": ERRORS_TAG},
        ),
    log:
        f"logs/{RUN}/errors/{ERRORS_TAG}/figure.log",
    conda:
        "../../envs/xmrc.yaml"
    params:
        shots=ERRORS["shots"],
        scenario=ERRORS["scenario"],
    shell:
        "python -m xmrc error-figure --items {input} --shots {params.shots} --scenario {params.scenario}"
        " --out {output} > {log} 2>&1"


if ERRORS["enabled"]:
    EXTRA_TARGETS.extend([*ERRORS_TABLES, f"{RESULTS}/figures/error_types_{ERRORS_TAG}.png"])
