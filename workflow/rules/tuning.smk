# One tuning job per (dataset, protocol, defense, ratio) of an attack with `tune`: an Optuna
# study on the attacker's public images (jobs/tune.py). The study's SQLite file beside
# the JSON is no declared output: Snakemake deletes a job's outputs before rerunning it,
# and the file is what lets a rerun (a killed job, a larger budget) add only the trials
# still missing.
rule tune:
    output:
        json=TUNING_OUTPUT,
    log:
        f"logs/tuning/{TUNING_PATTERN}.log",
    benchmark:
        f"results/benchmarks/tuning/{TUNING_PATTERN}.tsv"
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        # Declared for the same reason as the privacy jobs' (dry-run cost).
        disk_mb=1000,
    params:
        options=get_tuning_options,
    shell:
        "python -m jobs.tune {params.options} --threads {threads}"
        " --out-json {output.json} > {log} 2>&1"


rule aggregate_tuning:
    input:
        get_tuning_outputs(),
    output:
        "results/tuning.csv",
    log:
        "logs/aggregate_tuning.log",
    conda:
        "../../environment.yml"
    shell:
        "python -m jobs.aggregate tuning --out {output} {input} > {log} 2>&1"
