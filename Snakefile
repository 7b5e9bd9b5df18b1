# dgp-bench: gradient inversion attacks vs defenses (privacy, utility, communication).
from snakemake.utils import min_version

min_version("9.0")


# The default grid only when no --configfile is given: a given config stands on its own
# (the schema fills in defaults), never merged over the default grid's keys.
if not workflow.overwrite_configfiles:

    configfile: "config/config.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/tuning.smk"
include: "workflow/rules/privacy.smk"
include: "workflow/rules/utility.smk"
include: "workflow/rules/labels.smk"
include: "workflow/rules/report.smk"


rule all:
    input:
        get_final_output(),
