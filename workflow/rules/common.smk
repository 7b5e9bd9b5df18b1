import json

from dgp.config import ConfigError, dataset_id, privacy_jobs, validate_config

# Validate before any job is scheduled: a bad config stops here with one clear message.
try:
    config.update(validate_config(config))
except ConfigError as error:
    raise WorkflowError(str(error)) from None

PRIVACY_JOBS = privacy_jobs(config)
PRIVACY_PATTERN = "{dataset}/{defense}/{ratio}/{attack}/seed{seed}"

wildcard_constraints:
    dataset="[A-Za-z0-9_-]+",
    defense="[A-Za-z0-9_]+",
    ratio="[0-9.e+-]+",
    attack="[A-Za-z0-9_]+",
    seed="[0-9]+",


def get_final_output():
    return ["results/privacy.csv", "results/report.html"]


def get_privacy_outputs(kind):
    """Paths of every privacy job's output of one kind ('json' or 'png')."""
    return [f"results/privacy/{PRIVACY_PATTERN.format(**job)}.{kind}" for job in PRIVACY_JOBS]


def get_dataset_json(wildcards):
    entry = next(d for d in config["datasets"] if dataset_id(d) == wildcards.dataset)
    return json.dumps({**entry, "id": wildcards.dataset}, sort_keys=True)


def get_defense_params_json(wildcards):
    entry = next(d for d in config["defenses"] if d["name"] == wildcards.defense)
    return json.dumps(entry["params"], sort_keys=True)


def get_attack_params_json(wildcards):
    entry = next(a for a in config["attacks"] if a["name"] == wildcards.attack)
    return json.dumps(entry["params"], sort_keys=True)
