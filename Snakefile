# dgp-bench: gradient inversion attacks vs defenses (privacy, utility, communication).
from snakemake.utils import min_version

min_version("9.0")


configfile: "config/config.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/privacy.smk"
include: "workflow/rules/utility.smk"
include: "workflow/rules/labels.smk"
include: "workflow/rules/report.smk"


rule all:
    input:
        get_final_output(),
