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
        dataset=get_dataset_json,
        protocol=get_protocol_json,
        defense_params=get_defense_params_json,
        attack_params=get_attack_params_json,
        num_images=config["privacy"]["num_images"],
        batch_size=config["privacy"]["batch_size"],
        device=config["device"],
        checkpoint=get_checkpoint_option,
    shell:
        "python -m dgp.jobs.privacy --dataset {params.dataset:q}"
        " --protocol {params.protocol:q}"
        " --defense {wildcards.defense} --ratio {wildcards.ratio}"
        " --defense-params {params.defense_params:q}"
        " --attack {wildcards.attack} --attack-params {params.attack_params:q}"
        " --seed {wildcards.seed} --round {wildcards.round} {params.checkpoint}"
        " --num-images {params.num_images}"
        " --batch-size {params.batch_size} --device {params.device} --threads {threads}"
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
