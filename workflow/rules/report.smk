rule report:
    input:
        privacy="results/privacy.csv",
        timings="results/privacy_timings.csv",
        utility=get_utility_table(),
        labels=get_label_table(),
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
    shell:
        "python -m report.render --privacy {input.privacy} --timings {input.timings}"
        " {params.utility} {params.labels}"
        " --benchmarks results/benchmarks --config {params.config:q}"
        " --out {output} > {log} 2>&1"
