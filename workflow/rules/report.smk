rule report:
    input:
        privacy="results/privacy.csv",
        images=get_privacy_outputs("png"),
    output:
        "results/report.html",
    log:
        "logs/report.log",
    params:
        config=json.dumps(config, sort_keys=True),
    shell:
        "python -m report.render --privacy {input.privacy} --config {params.config:q}"
        " --out {output} > {log} 2>&1"
