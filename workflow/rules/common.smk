import json

from dgp.jobs.config import (
    ConfigError,
    protocol_runs,
    privacy_jobs,
    training_jobs,
    training_settings,
    validate_config,
)
from dgp.data import dataset_id

# Validate before any job is scheduled: a bad config stops here with one clear message.
try:
    config.update(validate_config(config))
except ConfigError as error:
    raise WorkflowError(str(error)) from None

PRIVACY_JOBS = privacy_jobs(config)
TRAINING_JOBS = training_jobs(config)
TRAINING_PATTERN = "{dataset}/{defense}/{ratio}/seed{seed}"
PRIVACY_PATTERN = "{dataset}/{protocol}/{defense}/{ratio}/{attack}/round{round}/seed{seed}"
CHECKPOINT_ROUNDS = [r for r in config["privacy"]["model_rounds"] if r > 0]


wildcard_constraints:
    dataset="[A-Za-z0-9_-]+",
    protocol="[A-Za-z0-9_.-]+",
    defense="[A-Za-z0-9_]+",
    ratio="[0-9.e+-]+",
    attack="[A-Za-z0-9_]+",
    seed="[0-9]+",
    round="[0-9]+",


def get_final_output():
    return ["results/privacy.csv", "results/report.html"] + get_utility_table()


def get_utility_table():
    """The utility CSV when training is enabled, else nothing."""
    return ["results/utility.csv"] if TRAINING_JOBS else []


def get_utility_outputs():
    return [f"results/utility/{TRAINING_PATTERN.format(**job)}.csv" for job in TRAINING_JOBS]


def get_checkpoint_outputs():
    """Checkpoints each training job writes: one per attacked round after the first."""
    return [f"results/train/{TRAINING_PATTERN}/round{r}.pt" for r in CHECKPOINT_ROUNDS]


def get_attack_checkpoint(wildcards):
    """The trained model a privacy job attacks (none at round 0: the initial model)."""
    if int(wildcards.round) == 0:
        return []
    return [f"results/train/{TRAINING_PATTERN}/round{{round}}.pt".format(**wildcards)]


def get_checkpoint_option(wildcards, input):
    return f"--checkpoint {input.checkpoint}" if input.checkpoint else ""


def get_privacy_outputs(kind):
    """Paths of every privacy job's output of one kind ('json' or 'png')."""
    return [f"results/privacy/{PRIVACY_PATTERN.format(**job)}.{kind}" for job in PRIVACY_JOBS]


# Each job's settings, serialised once at parse time: a dry run of the paper grid asks for
# them thousands of times (benchmarks/dag.py).
DATASET_JSON = {
    dataset_id(d): json.dumps({**d, "id": dataset_id(d)}, sort_keys=True)
    for d in config["datasets"]
}
DEFENSE_PARAMS_JSON = {
    d["name"]: json.dumps(d["params"], sort_keys=True) for d in config["defenses"]
}
TRAINING_JSON = {
    d["name"]: json.dumps(
        {**training_settings(config, d["name"]), "checkpoint_rounds": CHECKPOINT_ROUNDS},
        sort_keys=True,
    )
    for d in config["defenses"]
}
PROTOCOL_JSON = {
    protocol.id: json.dumps(protocol.as_dict(), sort_keys=True)
    for protocol, _, _ in protocol_runs(config)
}
ATTACK_PARAMS_JSON = {a["name"]: json.dumps(a["params"], sort_keys=True) for a in config["attacks"]}


def get_dataset_json(wildcards):
    return DATASET_JSON[wildcards.dataset]


def get_defense_params_json(wildcards):
    return DEFENSE_PARAMS_JSON[wildcards.defense]


def get_training_json(wildcards):
    return TRAINING_JSON[wildcards.defense]


def get_protocol_json(wildcards):
    return PROTOCOL_JSON[wildcards.protocol]


def get_attack_params_json(wildcards):
    return ATTACK_PARAMS_JSON[wildcards.attack]
