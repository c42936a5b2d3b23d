# Stage 'paper': the paper's published numbers (package data) beside every cell this run produced of
# Tables 2, 3, 5-10 -> tables/paper_comparison.{csv,md} (+ per-table summary) and a scatter figure.
PAPER_COMPARISON = [f"{RESULTS}/tables/paper_comparison{part}" for part in (".csv", "_summary.csv", ".md")]


rule paper_comparison:
    input:
        paper_comparison_tables,
    output:
        tables=PAPER_COMPARISON,
        figure=report(
            f"{RESULTS}/figures/paper_comparison.png",
            caption="../report/paper_comparison.rst",
            category="Paper comparison",
            labels={"figure": "paper vs ours"},
        ),
    log:
        f"logs/{RUN}/paper_comparison.log",
    conda:
        "../../envs/xmrc.yaml"
    params:
        registry=config["registry"],
        out_dir=lambda wildcards, output: os.path.dirname(output.tables[0]),
    shell:
        "python -m xmrc paper-comparison --tables {input} --registry {params.registry}"
        " --out-dir {params.out_dir} --figure {output.figure} > {log} 2>&1"


if DATASET.key == "xquad":  # the published numbers are XQuAD's
    EXTRA_TARGETS.extend([*PAPER_COMPARISON, f"{RESULTS}/figures/paper_comparison.png"])
