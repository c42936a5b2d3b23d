# Stage 'protocol': a protocol-sensitivity study (config/protocol.yaml). Each arm is a run of its own
# (`--config 'protocol_study={"arm": "<arm>"}'`, results/<run>-<arm>/; `make protocol` runs them all); this rule,
# the target protocol_sensitivity of the study's config without an arm, pairs every arm with the baseline.
PROTOCOL_ARMS = arm_names(config) if config["protocol_study"]["arms"] else []
# the config files as Snakemake merged them: the Snakefile's default first, then each --configfile
STUDY_CONFIGS = ["config/config.yaml"] + [
    str(path) for path in workflow.configfiles if Path(path).resolve() != Path("config/config.yaml").resolve()
]


rule protocol_sensitivity:
    input:
        [
            f"results/{config['run']}-{arm}/tables/{name}"
            for arm in PROTOCOL_ARMS
            for name in ("item_scores.parquet", "summary_2shot.csv")
        ],
    output:
        table=f"{RESULTS}/tables/protocol_sensitivity.csv",
        markdown=f"{RESULTS}/tables/protocol_sensitivity.md",
        figure=report(
            f"{RESULTS}/figures/protocol_sensitivity.png",
            caption="../report/protocol_sensitivity.rst",
            category="Protocol sensitivity",
            labels={"figure": "switches: arm minus baseline"},
        ),
    log:
        f"logs/{RUN}/protocol_sensitivity.log",
    localrule: True
    conda:
        "../../envs/xmrc.yaml"
    params:
        configs=" ".join(STUDY_CONFIGS),
        resamples=config["intervals"]["resamples"],
        seed=config["intervals"]["seed"],
    shell:
        "python -m xmrc protocol-sensitivity --config {params.configs} --results results"
        " --resamples {params.resamples} --seed {params.seed} --out {output.table} --figure {output.figure}"
        " > {log} 2>&1"
