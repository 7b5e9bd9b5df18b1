rule verdicts:
    input:
        privacy="results/privacy.csv",
    output:
        "results/verdicts.csv",
    log:
        "logs/verdicts.log",
    conda:
        "../../environment.yml"
    shell:
        "python -m report.verdicts --privacy {input.privacy} --out {output} > {log} 2>&1"


rule report:
    input:
        privacy="results/privacy.csv",
        timings="results/privacy_timings.csv",
        verdicts="results/verdicts.csv",
        utility=get_utility_table(),
        labels=get_label_table(),
        tuning=get_tuning_table(),
        images=get_gallery_images(),
    output:
        "results/report.html",
    log:
        "logs/report.log",
    conda:
        "../../environment.yml"
    params:
        config=json.dumps(config, sort_keys=True),
        utility=lambda wc, input: f"--utility {input.utility}" if input.utility else "",
        labels=lambda wc, input: f"--labels {input.labels}" if input.labels else "",
        tuning=lambda wc, input: f"--tuning {input.tuning}" if input.tuning else "",
    shell:
        "python -m report.render --privacy {input.privacy} --timings {input.timings}"
        " --verdicts {input.verdicts} {params.utility} {params.labels} {params.tuning}"
        " --benchmarks results/benchmarks --config {params.config:q}"
        " --out {output} > {log} 2>&1"
