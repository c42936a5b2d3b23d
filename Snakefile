# xmrc: LLMs' cross-lingual context retrieval on XQuAD, end to end. See README.md.
from snakemake.utils import min_version

min_version("9.0")


configfile: "config/config.yaml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/download.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/models.smk"
include: "workflow/rules/generate.smk"
include: "workflow/rules/score.smk"
include: "workflow/rules/report.smk"
include: "workflow/rules/intervals.smk"
include: "workflow/rules/errors.smk"
include: "workflow/rules/finetune.smk"
include: "workflow/rules/oracle.smk"
include: "workflow/rules/layers.smk"
include: "workflow/rules/paper.smk"
include: "workflow/rules/report_tables.smk"
include: "workflow/rules/protocol.smk"
include: "workflow/rules/cluster.smk"


rule all:
    default_target: True
    input:
        all_targets(),
