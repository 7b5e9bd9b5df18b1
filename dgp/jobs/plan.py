"""What a config plans, read without torch: the job grid of a validated config, and the
validation itself memoised, so that a repeated dry run of the workflow skips it.

Validation (``dgp.jobs.config``) loads every plugin module and builds every configured
defense and attack to check its parameters; that imports no torch (``dgp.lazy``) but still
costs a few tenths of a second of every dry run. Its result depends only on the config,
this code and which data folders exist, so it is kept under the cache folder
(``$DGP_CACHE_DIR``, else ``$XDG_CACHE_HOME/dgp-bench/validated``, else
``~/.cache/dgp-bench/validated``) keyed by all three; a config that fails is never kept.
Deleting the folder only costs the next run that time.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, NamedTuple

from dgp.io import write_atomically
from dgp.protocol import Protocol

REPO = Path(__file__).resolve().parents[2]
# What validation reads besides the config: the code of every layer and the schema.
VALIDATION_SOURCES = ("dgp", "attacks", "defenses")
SCHEMA_PATH = REPO / "workflow" / "schemas" / "config.schema.yaml"


class ConfigError(ValueError):
    """A config that must not run; the message says what and where."""


def dataset_id(spec: dict[str, Any]) -> str:
    """The name a dataset entry has in paths and tables: its ``id``, else its ``name``."""
    return spec.get("id") or spec["name"]


def validated_config(config: dict[str, Any]) -> dict[str, Any]:
    """``dgp.jobs.config.validate_config(config)``, from the cache when this config, code
    and data folders were validated before; raises ConfigError as validation does."""
    key = _memo_key(config)
    memo = None if key is None else cache_dir() / f"{key}.json"
    if memo is not None and memo.is_file():
        try:
            return json.loads(memo.read_text())
        except (OSError, ValueError):
            pass  # unreadable or half-written by an older version: validate again
    from dgp.jobs.config import validate_config  # loads every plugin module

    valid = validate_config(config)
    if memo is not None:
        try:
            write_atomically(memo, lambda tmp: tmp.write_text(json.dumps(valid)))
        except OSError:
            pass  # an unwritable cache folder only costs time
    return valid


def cache_dir() -> Path:
    if os.environ.get("DGP_CACHE_DIR"):
        return Path(os.environ["DGP_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "dgp-bench" / "validated"


def code_fingerprint() -> str:
    """A hash of every Python file validation can run, and of the schema."""
    digest = hashlib.sha256()
    files = sorted(p for top in VALIDATION_SOURCES for p in (REPO / top).rglob("*.py"))
    for path in [*files, SCHEMA_PATH]:
        digest.update(str(path.relative_to(REPO)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def _data_state(config: dict[str, Any]) -> list[Any]:
    """Each dataset root as validation looks for it (relative to the working directory):
    whether it exists, and when its listing last changed (adding or deleting a data folder
    in it changes that)."""
    state = []
    for entry in config.get("datasets") or []:
        root = str(entry.get("root") or "data") if isinstance(entry, dict) else ""
        found = Path(root).exists() if root else False
        state.append([root, Path(root).stat().st_mtime_ns if found else None])
    return state


def _memo_key(config: dict[str, Any]) -> str | None:
    """The cache key of a config, or None where it is not plain JSON (then not cached)."""
    try:
        text = json.dumps([config, _data_state(config), code_fingerprint()], sort_keys=True)
    except (TypeError, ValueError):
        return None
    return hashlib.sha256(text.encode()).hexdigest()


def training_settings(config: dict[str, Any], defense_name: str) -> dict[str, Any]:
    """The training settings of one defense: the top-level ones with its overrides."""
    entry = next(d for d in config["defenses"] if d["name"] == defense_name)
    return {**config["training"], **entry["training"]}


class ProtocolRun(NamedTuple):
    """One configured protocol entry and the grid it runs: its defenses, attacks and seeds,
    and which of its attacks are tuned per setting before they attack."""

    protocol: Protocol
    defenses: list[str]
    attacks: list[str]
    seeds: list[int]
    tuned: list[str]


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
            [name for name in ran if name in tuned]))
    return runs


def format_ratio(ratio: float) -> str:
    """The ratio as it appears in paths and the CSV (shortest exact form)."""
    return repr(float(ratio)).removesuffix(".0")


# Where a privacy job writes (under results/privacy/, with .json or .png): a tuned attack's
# jobs under "<attack>-tuned", so that the workflow tells them apart by path alone.
PRIVACY_STEM = "{dataset}/{protocol}/{defense}/{ratio}/{attack}/round{round}/seed{seed}"
TUNED_SUFFIX = "-tuned"


def privacy_jobs(config: dict[str, Any]) -> list[dict[str, str]]:
    """Every (dataset, protocol, defense, ratio, attack, round, seed) of a validated config,
    with ``tuned`` ("1" or "") and the ``stem`` its outputs are written under."""
    return [{**job, "stem": PRIVACY_STEM.format(
                **{**job, "attack": job["attack"] + TUNED_SUFFIX * bool(job["tuned"])})}
            for job in _privacy_settings(config)]


def _privacy_settings(config: dict[str, Any]) -> list[dict[str, str]]:
    return [
        {**job, "protocol": run.protocol.id, "attack": attack, "round": str(model_round),
         "tuned": "1" if attack in run.tuned else ""}
        for run in protocol_runs(config)
        for job in _settings(config, run.seeds, ignore_enabled=True)
        if job["defense"] in run.defenses
        for attack in run.attacks
        for model_round in config["privacy"]["model_rounds"]
    ]


def tuned_attacks(config: dict[str, Any]) -> list[str]:
    """The configured attacks with a ``tune`` budget: tuned before attacking, on every
    setting of a protocol entry without its own ``tune`` list, else where it lists them."""
    return [a["name"] for a in config["attacks"] if "tune" in a]


def tuning_jobs(config: dict[str, Any]) -> list[dict[str, str]]:
    """Every (dataset, protocol, defense, ratio, attack) whose privacy jobs attack with
    tuned parameters: one tuning job each, whatever the round and seed."""
    keys = ("dataset", "protocol", "defense", "ratio", "attack")
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
