"""What a config plans, read without torch: the job grid of a validated config
(``jobs.validated`` validates it), and the names its jobs have in paths."""

from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple

from dgp.protocol import Protocol

SCHEMA_PATH = Path(__file__).resolve().parents[1] / "workflow" / "schemas" / "config.schema.yaml"


class ConfigError(ValueError):
    """A config that must not run; the message says what and where."""


def dataset_id(spec: dict[str, Any]) -> str:
    """The name a dataset entry has in paths and tables: its ``id``, else its ``name``."""
    return spec.get("id") or spec["name"]


def training_settings(config: dict[str, Any], defense_name: str) -> dict[str, Any]:
    """The training settings of one defense: the top-level ones with its overrides."""
    entry = next(d for d in config["defenses"] if d["name"] == defense_name)
    return {**config["training"], **entry["training"]}


class ProtocolRun(NamedTuple):
    """One configured protocol entry and the grid it runs: its defenses, attacks and seeds,
    which of its attacks are tuned per setting before they attack, each user's batch size,
    the images a job attacks and the training rounds attacked."""

    protocol: Protocol
    defenses: list[str]
    attacks: list[str]
    seeds: list[int]
    tuned: list[str]
    batch_size: int
    num_images: int
    model_rounds: list[int]


# What a protocol entry may set for itself, else privacy's own value.
ENTRY_SIZES = ("batch_size", "num_images", "model_rounds")


def entry_sizes(config: dict[str, Any], entry: dict[str, Any]) -> dict[str, Any]:
    """A protocol entry's batch size, images per job and attacked rounds: its own, else
    the privacy section's."""
    return {key: entry.get(key, config["privacy"][key]) for key in ENTRY_SIZES}


def protocol_runs(config: dict[str, Any]) -> list[ProtocolRun]:
    """Each configured protocol entry with the defense and attack names and the seeds it
    runs (the entry's own ``seeds``, else ``privacy.seeds``) and its tuned attacks (the
    entry's ``tune``, else each of its attacks with a ``tune`` budget)."""
    defenses = [d["name"] for d in config["defenses"]]
    attacks = [a["name"] for a in config["attacks"]]
    runs = []
    for entry in config["privacy"]["protocols"]:
        ran = [name for name in attacks if name in entry.get("attacks", attacks)]
        tuned = entry.get("tune", tuned_attacks(config))
        runs.append(ProtocolRun(
            Protocol.from_dict(entry),
            [name for name in defenses if name in entry.get("defenses", defenses)],
            ran, entry.get("seeds", config["privacy"]["seeds"]),
            [name for name in ran if name in tuned], **entry_sizes(config, entry)))
    return runs


def images_per_job(config: dict[str, Any]) -> dict[tuple[str, str, str, str], int]:
    """(protocol id, batch size, defense, round) -> the images each of its privacy jobs
    attacks (entries that share such a setting share it: validation checks)."""
    return {(run.protocol.id, str(run.batch_size), defense, str(model_round)): run.num_images
            for run in protocol_runs(config) for defense in run.defenses
            for model_round in run.model_rounds}


def attacked_rounds(config: dict[str, Any]) -> list[int]:
    """Every training round some protocol entry attacks, in order."""
    return sorted({r for run in protocol_runs(config) for r in run.model_rounds})


def format_ratio(ratio: float) -> str:
    """The ratio as it appears in paths and the CSV (shortest exact form)."""
    return repr(float(ratio)).removesuffix(".0")


# Where a privacy job writes (under results/privacy/, with .json or .png): a tuned attack's
# jobs under "<attack>-tuned", so that the workflow tells them apart by path alone.
PRIVACY_STEM = ("{dataset}/{protocol}/batch{batch_size}/{defense}/{ratio}/{attack}/round{round}"
                "/seed{seed}")
TUNED_SUFFIX = "-tuned"


def privacy_jobs(config: dict[str, Any]) -> list[dict[str, str]]:
    """Every (dataset, protocol, batch size, defense, ratio, attack, round, seed) of a
    validated config, with ``tuned`` ("1" or "") and the ``stem`` its outputs are written
    under."""
    return [{**job, "stem": PRIVACY_STEM.format(
                **{**job, "attack": job["attack"] + TUNED_SUFFIX * bool(job["tuned"])})}
            for job in _privacy_settings(config)]


def _privacy_settings(config: dict[str, Any]) -> list[dict[str, str]]:
    return [
        {**job, "protocol": run.protocol.id, "batch_size": str(run.batch_size),
         "attack": attack, "round": str(model_round),
         "tuned": "1" if attack in run.tuned else ""}
        for run in protocol_runs(config)
        for job in _settings(config, run.seeds, ignore_enabled=True)
        if job["defense"] in run.defenses
        for attack in run.attacks
        for model_round in run.model_rounds
    ]


def gallery_stems(jobs: list[dict[str, str]]) -> list[str]:
    """The stems of ``privacy_jobs`` a report gallery may show: in each (dataset, protocol,
    batch size), the jobs of its first attacked round, each setting's smallest seed."""
    def section(job: dict[str, str]) -> tuple[str, ...]:
        return job["dataset"], job["protocol"], job["batch_size"]

    def setting(job: dict[str, str]) -> tuple[str, ...]:
        return (*section(job), job["defense"], job["ratio"], job["attack"], job["tuned"])

    first_round: dict[tuple[str, ...], int] = {}
    for job in jobs:
        first_round[section(job)] = min(first_round.get(section(job), int(job["round"])),
                                        int(job["round"]))
    shown = [job for job in jobs if int(job["round"]) == first_round[section(job)]]
    first_seed: dict[tuple[str, ...], int] = {}
    for job in shown:
        first_seed[setting(job)] = min(first_seed.get(setting(job), int(job["seed"])),
                                       int(job["seed"]))
    return [job["stem"] for job in shown if int(job["seed"]) == first_seed[setting(job)]]


def tuned_attacks(config: dict[str, Any]) -> list[str]:
    """The configured attacks with a ``tune`` budget: tuned before attacking, on every
    setting of a protocol entry without its own ``tune`` list, else where it lists them."""
    return [a["name"] for a in config["attacks"] if "tune" in a]


def tuning_jobs(config: dict[str, Any]) -> list[dict[str, str]]:
    """Every (dataset, protocol, batch size, defense, ratio, attack) whose privacy jobs
    attack with tuned parameters: one tuning job each, whatever the round and seed."""
    keys = ("dataset", "protocol", "batch_size", "defense", "ratio", "attack")
    settings = {tuple(job[k] for k in keys): None for job in privacy_jobs(config)
                if job["tuned"]}
    return [dict(zip(keys, setting, strict=True)) for setting in settings]


def training_jobs(config: dict[str, Any]) -> list[dict[str, str]]:
    """Every (dataset, defense, ratio, seed) trained (training can be disabled globally or
    per defense with ``enabled: false``)."""
    return _settings(config, config["seeds"], ignore_enabled=False)


def _settings(config: dict[str, Any], seeds: list[int],
              ignore_enabled: bool) -> list[dict[str, str]]:
    return [
        {"dataset": dataset_id(dataset), "defense": defense["name"],
         "ratio": format_ratio(ratio), "seed": str(seed)}
        for dataset in config["datasets"]
        for defense in config["defenses"]
        if ignore_enabled or training_settings(config, defense["name"])["enabled"]
        for ratio in defense["ratios"]
        for seed in seeds
    ]


def label_jobs(config: dict[str, Any]) -> list[dict[str, str]]:
    """Every (dataset, defense, ratio) of a label-recovery run; none when disabled."""
    if not config["labels"]["enabled"]:
        return []
    return [{"dataset": dataset_id(dataset), "defense": defense["name"],
             "ratio": format_ratio(ratio)}
            for dataset in config["datasets"]
            for defense in config["defenses"]
            for ratio in defense["ratios"]]
