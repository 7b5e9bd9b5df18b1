rule train:
    output:
        csv=f"results/utility/{TRAINING_PATTERN}.csv",
        checkpoints=get_checkpoint_outputs(),
    log:
        f"logs/utility/{TRAINING_PATTERN}.log",
    benchmark:
        f"results/benchmarks/utility/{TRAINING_PATTERN}.tsv"
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        # The default's value for these small inputs, declared: evaluating the default
        # expression (input size) per job costs seconds in a dry run of the paper grid.
        disk_mb=1000,
    params:
        options=get_training_options,
    shell:
        "python -m jobs.train {params.options} --threads {threads}"
        " --out-csv {output.csv} > {log} 2>&1"


rule aggregate_utility:
    input:
        get_utility_outputs(),
    output:
        results="results/utility.csv",
        timings="results/utility_timings.csv",
    log:
        "logs/aggregate_utility.log",
    conda:
        "../../environment.yml"
    shell:
        "python -m jobs.aggregate utility --out {output.results}"
        " --timings {output.timings} {input} > {log} 2>&1"
