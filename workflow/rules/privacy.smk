# A privacy job on the initial model (round 0); attack_trained below is the same job on a
# trained model's checkpoint. Two rules rather than an input function: Snakemake evaluates
# such a function per job, 2 s of a dry run of the paper grid (benchmarks/dag.py).
rule attack:
    output:
        json=f"results/privacy/{PRIVACY_PATTERN}.json",
        png=f"results/privacy/{PRIVACY_PATTERN}.png",
    log:
        f"logs/privacy/{PRIVACY_PATTERN}.log",
    benchmark:
        f"results/benchmarks/privacy/{PRIVACY_PATTERN}.tsv"
    wildcard_constraints:
        round="0",
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        # The default's value for these small inputs, declared: evaluating the default
        # expression (input size) per job costs seconds in a dry run of the paper grid.
        disk_mb=1000,
    params:
        options=get_privacy_options,
        tuned="",
    shell:
        "python -m jobs.privacy {params.options}{params.tuned} --threads {threads}"
        " --out-json {output.json} --out-png {output.png} > {log} 2>&1"


use rule attack as attack_trained with:
    input:
        checkpoint=CHECKPOINT_PATTERN,
    wildcard_constraints:
        round="[1-9][0-9]*",


# The same jobs of an attack tuned on the setting (a protocol entry's tune): with the
# parameters its tuning job (tuning.smk) chose on public data, whatever the round; written
# under "<attack>-tuned".
use rule attack as attack_tuned with:
    input:
        tuned=TUNING_OUTPUT,
    output:
        json=f"results/privacy/{TUNED_PRIVACY_PATTERN}.json",
        png=f"results/privacy/{TUNED_PRIVACY_PATTERN}.png",
    log:
        f"logs/privacy/{TUNED_PRIVACY_PATTERN}.log",
    benchmark:
        f"results/benchmarks/privacy/{TUNED_PRIVACY_PATTERN}.tsv"
    wildcard_constraints:
        round="0",
    params:
        options=get_privacy_options,
        tuned=f" --tuned {TUNING_OUTPUT}",


use rule attack_tuned as attack_trained_tuned with:
    input:
        checkpoint=CHECKPOINT_PATTERN,
        tuned=TUNING_OUTPUT,
    wildcard_constraints:
        round="[1-9][0-9]*",
    params:
        options=get_privacy_options,
        tuned=f" --tuned {TUNING_OUTPUT}",


rule aggregate_privacy:
    input:
        get_privacy_outputs("json"),
    output:
        results="results/privacy.csv",
        timings="results/privacy_timings.csv",
    log:
        "logs/aggregate_privacy.log",
    conda:
        "../../environment.yml"
    shell:
        "python -m jobs.aggregate privacy --out {output.results}"
        " --timings {output.timings} {input} > {log} 2>&1"
