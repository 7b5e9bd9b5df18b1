rule attack:
    input:
        checkpoint=get_attack_checkpoint,
    output:
        json=f"results/privacy/{PRIVACY_PATTERN}.json",
        png=f"results/privacy/{PRIVACY_PATTERN}.png",
    log:
        f"logs/privacy/{PRIVACY_PATTERN}.log",
    benchmark:
        f"results/benchmarks/privacy/{PRIVACY_PATTERN}.tsv"
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        # The default's value for these small inputs, declared: evaluating the default
        # expression (input size) per job costs seconds in a dry run of the paper grid.
        disk_mb=1000,
    params:
        options=get_privacy_options,
    shell:
        "python -m dgp.jobs.privacy {params.options} --threads {threads}"
        " --out-json {output.json} --out-png {output.png} > {log} 2>&1"


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
        "python -m dgp.jobs.aggregate privacy --out {output.results}"
        " --timings {output.timings} {input} > {log} 2>&1"
