import json
import shlex

from jobs.plan import (
    PRIVACY_STEM,
    TUNED_SUFFIX,
    ConfigError,
    attacked_rounds,
    dataset_id,
    gallery_stems,
    images_per_job,
    label_jobs,
    protocol_runs,
    privacy_jobs,
    training_jobs,
    training_settings,
    tuning_jobs,
)
from jobs.validated import validated_config

# Validate before any job is scheduled: a bad config stops here with one clear message. It
# imports no torch (dgp/lazy.py) and is memoised (jobs/validated.py): a repeated dry run
# skips it.
try:
    config.update(validated_config(config))
except ConfigError as error:
    raise WorkflowError(str(error)) from None

PRIVACY_JOBS = privacy_jobs(config)
TRAINING_JOBS = training_jobs(config)
LABEL_JOBS = label_jobs(config)
TUNING_JOBS = tuning_jobs(config)
TRAINING_PATTERN = "{dataset}/{defense}/{ratio}/seed{seed}"
LABEL_PATTERN = "{dataset}/{defense}/{ratio}"
PRIVACY_PATTERN = PRIVACY_STEM
# A tuned attack's jobs write under "<attack>-tuned" (jobs/plan.py): their rules match
# by path, the attack wildcard being the name alone (no "-" in it).
TUNED_PRIVACY_PATTERN = PRIVACY_STEM.replace("{attack}", f"{{attack}}{TUNED_SUFFIX}")
# A tuning job's setting: its parameters serve every round and seed of the setting.
TUNING_PATTERN = "{dataset}/{protocol}/batch{batch_size}/{defense}/{ratio}/{attack}"
TUNING_OUTPUT = f"results/tuning/{TUNING_PATTERN}.json"
# The trained model of one training job after a round (what attack_trained attacks).
CHECKPOINT_PATTERN = f"results/train/{TRAINING_PATTERN}/round{{round}}.pt"
CHECKPOINT_ROUNDS = [r for r in attacked_rounds(config) if r > 0]


wildcard_constraints:
    dataset="[A-Za-z0-9_-]+",
    protocol="[A-Za-z0-9_.-]+",
    defense="[A-Za-z0-9_]+",
    ratio="[0-9.e+-]+",
    attack="[A-Za-z0-9_]+",
    seed="[0-9]+",
    round="[0-9]+",
    batch_size="[0-9]+",


def get_final_output():
    return (
        ["results/privacy.csv", "results/verdicts.csv", "results/report.html"]
        + get_utility_table()
        + get_label_table()
        + get_tuning_table()
    )


def get_utility_table():
    """The utility CSV when training is enabled, else nothing."""
    return ["results/utility.csv"] if TRAINING_JOBS else []


def get_label_table():
    """The label-recovery CSV when label jobs run, else nothing."""
    return ["results/labels.csv"] if LABEL_JOBS else []


def get_tuning_table():
    """The table of tuned attacks when an attack is tuned, else nothing."""
    return ["results/tuning.csv"] if TUNING_JOBS else []


def get_tuning_outputs():
    return [f"results/tuning/{TUNING_PATTERN.format(**job)}.json" for job in TUNING_JOBS]


def get_label_outputs():
    return [f"results/labels/{LABEL_PATTERN.format(**job)}.csv" for job in LABEL_JOBS]


def get_utility_outputs():
    return [f"results/utility/{TRAINING_PATTERN.format(**job)}.csv" for job in TRAINING_JOBS]


def get_checkpoint_outputs():
    """Checkpoints each training job writes: one per attacked round after the first."""
    return [CHECKPOINT_PATTERN.replace("{round}", str(r)) for r in CHECKPOINT_ROUNDS]


def get_attack_checkpoint(wildcards):
    """The trained model a privacy job attacks (none at round 0: the initial model)."""
    if int(wildcards.round) == 0:
        return []
    return [CHECKPOINT_PATTERN.format(**wildcards)]


def get_privacy_outputs(kind):
    """Paths of every privacy job's output of one kind ('json' or 'png')."""
    return [f"results/privacy/{job['stem']}.{kind}" for job in PRIVACY_JOBS]


def get_gallery_images():
    """The reconstructions the report can show: its gallery takes each section's (dataset,
    protocol, batch size) first attacked round and each setting's smallest seed
    (report/render.py, gallery). Naming only these keeps a dry run of the paper grid from
    looking up every job's image a second time."""
    return [f"results/privacy/{stem}.png" for stem in gallery_stems(PRIVACY_JOBS)]


# Each job's settings as command-line options, quoted once at parse time: a dry run of the
# paper grid evaluates every params function of every job, and each one costs
# (benchmarks/dag.py), so a job's rule has one.
def quoted_json(value):
    return shlex.quote(json.dumps(value, sort_keys=True))


DATASET_OPTION = {
    dataset_id(d): f"--dataset {quoted_json({**d, 'id': dataset_id(d)})}"
    for d in config["datasets"]
}
DEFENSE_PARAMS_OPTION = {
    d["name"]: f"--defense-params {quoted_json(d['params'])}" for d in config["defenses"]
}
TRAINING_OPTION = {
    d["name"]: "--training "
    + quoted_json({**training_settings(config, d["name"]), "checkpoint_rounds": CHECKPOINT_ROUNDS})
    for d in config["defenses"]
}
PROTOCOL_OPTION = {
    run.protocol.id: f"--protocol {quoted_json(run.protocol.as_dict())}"
    for run in protocol_runs(config)
}
ATTACK_PARAMS_OPTION = {
    a["name"]: f"--attack-params {quoted_json(a['params'])}" for a in config["attacks"]
}
TUNE_OPTION = {
    a["name"]: f"--trials {a['tune']['trials']} --images {a['tune']['images']}"
    for a in config["attacks"]
    if "tune" in a
}
# Per (protocol, batch size, defense, round): the images a job attacks and each user's batch.
PRIVACY_SIZES = {
    setting: f"--num-images {count} --batch-size {setting[1]} --device {config['device']}"
    for setting, count in images_per_job(config).items()
}


def get_privacy_options(wildcards):
    """Every setting of one privacy job, as the options of jobs.privacy."""
    w = wildcards
    model = [f"--checkpoint {path}" for path in get_attack_checkpoint(w)]
    return " ".join(
        [DATASET_OPTION[w.dataset], PROTOCOL_OPTION[w.protocol]]
        + [f"--defense {w.defense} --ratio {w.ratio}", DEFENSE_PARAMS_OPTION[w.defense]]
        + [f"--attack {w.attack}", ATTACK_PARAMS_OPTION[w.attack]]
        + [f"--seed {w.seed} --round {w.round}"]
        + [PRIVACY_SIZES[w.protocol, w.batch_size, w.defense, w.round]]
        + model
    )


def get_tuning_options(wildcards):
    """Every setting of one tuning job, as the options of jobs.tune."""
    w = wildcards
    return " ".join(
        [DATASET_OPTION[w.dataset], PROTOCOL_OPTION[w.protocol]]
        + [f"--defense {w.defense} --ratio {w.ratio}", DEFENSE_PARAMS_OPTION[w.defense]]
        + [f"--attack {w.attack}", ATTACK_PARAMS_OPTION[w.attack], TUNE_OPTION[w.attack]]
        + [f"--batch-size {w.batch_size} --device {config['device']}"]
    )


LABEL_SIZES = (
    "--batch-sizes "
    + " ".join(str(size) for size in config["labels"]["batch_sizes"])
    + f" --batches {config['labels']['batches']} --seed {config['labels']['seed']}"
    + f" --device {config['device']}"
)


def get_label_options(wildcards):
    """Every setting of one label-recovery job, as the options of jobs.labels."""
    w = wildcards
    return " ".join(
        [DATASET_OPTION[w.dataset], f"--defense {w.defense} --ratio {w.ratio}"]
        + [DEFENSE_PARAMS_OPTION[w.defense], LABEL_SIZES]
    )


def get_training_options(wildcards):
    """Every setting of one training job, as the options of jobs.train."""
    w = wildcards
    return " ".join(
        [DATASET_OPTION[w.dataset], f"--defense {w.defense} --ratio {w.ratio}"]
        + [DEFENSE_PARAMS_OPTION[w.defense], TRAINING_OPTION[w.defense]]
        + [f"--seed {w.seed} --device {config['device']}"]
        + [f"--checkpoint-dir results/train/{TRAINING_PATTERN}".format(**w)]
    )
