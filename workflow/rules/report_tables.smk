# The main tables of every stage as HTML pages, items of `snakemake --report` beside the stage's figures
# (xmrc.report_tables says which tables and where). Included last: it lists the tables the other stages make.
REPORT_TABLE_STEMS = report_tables.report_stems(all_targets(), f"{RESULTS}/tables")


rule report_tables:
    input:
        [f"{RESULTS}/tables/{stem}.csv" for stem in REPORT_TABLE_STEMS],
    output:
        [report_table_item(stem) for stem in REPORT_TABLE_STEMS],
    log:
        f"logs/{RUN}/report_tables.log",
    conda:
        "../../envs/xmrc.yaml"
    params:
        stems=" ".join(REPORT_TABLE_STEMS),
        tables_dir=lambda wildcards, input: folder_of(input[0], REPORT_TABLE_STEMS[0] + ".csv"),
        out_dir=lambda wildcards, output: folder_of(output[0], REPORT_TABLE_STEMS[0] + ".html"),
    shell:
        "python -m xmrc report-tables --tables-dir {params.tables_dir} --stems {params.stems}"
        " --out-dir {params.out_dir} > {log} 2>&1"


EXTRA_TARGETS.extend(f"{RESULTS}/report/{stem}.html" for stem in REPORT_TABLE_STEMS)
