rule xquad:
    input:
        data_inputs,
    output:
        table=f"{RESULTS}/data/xquad.parquet",
        problems=f"{RESULTS}/data/xquad_problems.csv",
    log:
        f"logs/{RUN}/xquad.log",
    params:
        source=config["data"]["source"],
        origin=(
            f"--local-dir {config['data']['local_dir']}"
            if config["data"]["source"] == "local"
            else f"--hub-id {config['data']['hub_id']}"
            + (f" --revision {config['data']['revision']}" if config["data"]["revision"] else "")
        ),
        languages=" ".join(LANGS),
    conda:
        "../../envs/xmrc.yaml"
    shell:
        "python -m xmrc data --source {params.source} {params.origin} --languages {params.languages}"
        " --out {output.table} --problems {output.problems} > {log} 2>&1"
