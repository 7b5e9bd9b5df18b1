rule labels:
    output:
        f"results/labels/{LABEL_PATTERN}.csv",
    log:
        f"logs/labels/{LABEL_PATTERN}.log",
    benchmark:
        f"results/benchmarks/labels/{LABEL_PATTERN}.tsv"
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        # Declared for the same reason as the privacy and training jobs' (dry-run cost).
        disk_mb=1000,
    params:
        options=get_label_options,
    shell:
        "python -m jobs.labels {params.options} --threads {threads} --out {output} > {log} 2>&1"


rule aggregate_labels:
    input:
        get_label_outputs(),
    output:
        "results/labels.csv",
    log:
        "logs/aggregate_labels.log",
    conda:
        "../../environment.yml"
    shell:
        "python -m jobs.aggregate labels --out {output} {input} > {log} 2>&1"
