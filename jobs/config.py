"""Config validation (schema, then names and ranges) and the job list it implies.

Used by the workflow before any job runs, and by the tests; every problem becomes one
``ConfigError`` whose message names the offending key.
"""

from __future__ import annotations

import copy
import math
from typing import Any

import jsonschema
import yaml

from attacks import ATTACKS, create_attack
from defenses import DEFENSES, create_defense
from dgp.data import DATASETS, missing_data_message
from dgp.models import MODELS, MODELS_WITH_BATCHNORM
from dgp.protocol import Protocol
from jobs.plan import SCHEMA_PATH, ConfigError, dataset_id, entry_sizes, training_settings


def _with_defaults(validator_class):
    """A validator that also fills in schema defaults (jsonschema's documented recipe)."""
    validate_properties = validator_class.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, schema):
        if isinstance(instance, dict):
            for key, subschema in properties.items():
                if "default" in subschema:
                    instance.setdefault(key, copy.deepcopy(subschema["default"]))
        yield from validate_properties(validator, properties, instance, schema)

    return jsonschema.validators.extend(validator_class, {"properties": set_defaults})


def _where(path) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text or "config"


def validate_config(config: dict[str, Any]) -> dict[str, Any]:
    """Return a validated copy of ``config`` with defaults filled in, or raise ConfigError."""
    config = copy.deepcopy(config)
    _schedule_keys_as_text(config)
    schema = yaml.safe_load(SCHEMA_PATH.read_text())
    validator = _with_defaults(jsonschema.Draft202012Validator)(schema)
    error = jsonschema.exceptions.best_match(validator.iter_errors(config))
    if error is not None:
        raise ConfigError(f"config error at {_where(error.absolute_path)}: {error.message}")
    config["privacy"].setdefault("seeds", list(config["seeds"]))
    _check_names_and_ranges(config)
    return config


def _schedule_keys_as_text(config: dict[str, Any]) -> None:
    """YAML reads ``lr_schedule: {16: 0.005}`` with integer keys, JSON (the schema, the
    jobs' arguments) has only text keys: make them text, as a quoted YAML key would be."""
    sections = [config.get("training")]
    if isinstance(config.get("defenses"), list):
        sections += [d.get("training") for d in config["defenses"] if isinstance(d, dict)]
    for section in sections:
        if isinstance(section, dict) and isinstance(section.get("lr_schedule"), dict):
            section["lr_schedule"] = {str(k): v for k, v in section["lr_schedule"].items()}


def _unique(items: list[dict[str, Any]], key, what: str) -> None:
    seen = set()
    for i, item in enumerate(items):
        value = key(item)
        if value in seen:
            raise ConfigError(f"config error at {what}[{i}]: {value!r} appears twice")
        seen.add(value)


def _check_training_override(override: dict[str, Any], where: str) -> None:
    """A defense's training override must be valid as (part of) the training settings."""
    schema = yaml.safe_load(SCHEMA_PATH.read_text())["properties"]["training"]
    error = jsonschema.exceptions.best_match(
        jsonschema.Draft202012Validator(schema).iter_errors(override))
    if error is not None:
        inner = "." + _where(error.absolute_path) if error.absolute_path else ""
        raise ConfigError(f"{where}{inner}: {error.message}")


def _check_names_and_ranges(config: dict[str, Any]) -> None:
    """Everything the schema cannot say: registered names, each defense's and attack's own
    checks, and the keys that depend on each other."""
    _check_datasets(config)
    _check_defenses(config)
    _check_attacks(config)
    _check_gallery(config)
    _check_privacy(config)
    _check_protocols(config)


def _registered(where: str, kind: str, name: str, registry: dict[str, Any]) -> None:
    if name not in registry:
        raise ConfigError(f"{where}: unknown {kind} {name!r}; choose one of "
                          f"{', '.join(registry)}")


def _check_datasets(config: dict[str, Any]) -> None:
    for i, dataset in enumerate(config["datasets"]):
        where = f"config error at datasets[{i}]"
        _registered(f"{where}.name", "dataset", dataset["name"], DATASETS)
        _registered(f"{where}.model", "model", dataset["model"], MODELS)
        missing = missing_data_message(dataset)
        if missing:
            raise ConfigError(f"{where}: {missing}")
    _unique(config["datasets"], dataset_id, "datasets")


def _check_defenses(config: dict[str, Any]) -> None:
    for i, defense in enumerate(config["defenses"]):
        where = f"config error at defenses[{i}]"
        _registered(f"{where}.name", "defense", defense["name"], DEFENSES)
        for ratio in defense["ratios"]:
            try:
                create_defense(defense["name"], ratio, defense["params"])
            except ValueError as error:
                raise ConfigError(f"{where}: {error}") from None
        _check_training_override(defense["training"], f"{where}.training")
    _unique(config["defenses"], lambda d: d["name"], "defenses")


def _check_attacks(config: dict[str, Any]) -> None:
    for i, attack in enumerate(config["attacks"]):
        where = f"config error at attacks[{i}]"
        _registered(f"{where}.name", "attack", attack["name"], ATTACKS)
        try:
            attack_impl = create_attack(attack["name"], attack["params"])
        except ValueError as error:
            raise ConfigError(f"{where}: {error}") from None
        _check_tuning(attack_impl, attack, where)
        without_batchnorm = [d["model"] for d in config["datasets"]
                             if d["model"] not in MODELS_WITH_BATCHNORM]
        if attack_impl.needs_batchnorm and without_batchnorm:
            raise ConfigError(f"{where}: attack {attack['name']!r} needs a model with "
                              f"BatchNorm ({', '.join(MODELS_WITH_BATCHNORM)}), but the "
                              f"datasets use {', '.join(sorted(set(without_batchnorm)))}")
    _unique(config["attacks"], lambda a: a["name"], "attacks")


def _check_tuning(attack_impl: Any, attack: dict[str, Any], where: str) -> None:
    """``tune`` only on an attack that declares what to tune, around its configured values."""
    if "tune" not in attack:
        return
    if not attack_impl.tuning_space:
        raise ConfigError(f"{where}.tune: attack {attack['name']!r} has nothing to tune (no "
                          "tuning_space); remove tune or tune an attack that declares one")
    try:
        attack_impl.tuning_ranges()
    except ValueError as error:
        raise ConfigError(f"{where}.tune: {error}") from None


def _check_gallery(config: dict[str, Any]) -> None:
    ratios = {d["name"]: d["ratios"] for d in config["defenses"]}
    for name, ratio in config["report"]["gallery_ratios"].items():
        where = f"config error at report.gallery_ratios.{name}"
        if name not in ratios:
            raise ConfigError(f"{where}: {name!r} is not one of the configured defenses "
                              f"({', '.join(ratios)})")
        if not any(math.isclose(ratio, r) for r in ratios[name]):
            raise ConfigError(f"{where}: {ratio:g} is not one of its ratios "
                              f"({', '.join(f'{r:g}' for r in ratios[name])})")


def _check_privacy(config: dict[str, Any]) -> None:
    privacy = config["privacy"]
    untrained = [d["name"] for d in config["defenses"]
                 if not training_settings(config, d["name"])["enabled"]]
    for where, entry in _privacy_entries(config):
        sizes = entry_sizes(config, entry)
        trained = any(sizes["model_rounds"])
        if trained and untrained:
            raise ConfigError(f"config error at {where}.model_rounds: attacking trained "
                              "models (rounds > 0) needs training.enabled: true (disabled "
                              f"for {', '.join(untrained)})")
        untrained_seeds = sorted(set(entry.get("seeds", privacy["seeds"])) - set(config["seeds"]))
        if trained and untrained_seeds:
            seeds_at = f"{where}.seeds" if "seeds" in entry else "privacy.seeds"
            raise ConfigError(f"config error at {seeds_at}: attacking trained models (rounds "
                              f"> 0) needs checkpoints, but seed(s) {untrained_seeds} are "
                              f"not among the training seeds {config['seeds']}")
    if privacy["num_images"] % privacy["batch_size"]:
        raise ConfigError("config error at privacy: num_images "
                          f"({privacy['num_images']}) must be a multiple of batch_size "
                          f"({privacy['batch_size']})")


def _privacy_entries(config: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """The privacy section and each protocol entry, with where each is in the config."""
    return [("privacy", {})] + [(f"privacy.protocols[{i}]", entry)
                                for i, entry in enumerate(config["privacy"]["protocols"])]


def _check_protocols(config: dict[str, Any]) -> None:
    """Each protocol is well-formed, runs only attacks built for it (each attack declares
    what it handles), filters only configured names, and splits the jobs' images evenly."""
    privacy = config["privacy"]
    for i, entry in enumerate(privacy["protocols"]):
        where = f"config error at privacy.protocols[{i}]"
        try:
            protocol = Protocol.from_dict(entry)
        except ValueError as error:
            raise ConfigError(f"{where}: {error}") from None
        # A filter names registered plugins (a typo is an error); one not configured is
        # not run, so an overlay config may drop a defense a protocol lists.
        for key, registry in (("defenses", DEFENSES), ("attacks", ATTACKS)):
            for name in entry.get(key, []):
                _registered(f"{where}.{key}", key.removesuffix("s"), name, registry)
        _check_protocol_fits(config, protocol, entry, where)
        _check_defense_aware_sums(config, protocol, entry, where)
        _check_entry_tuning(config, entry, where)
        _check_attacks_fit_defenses(config, entry, where)
    _check_repeated_protocols(config)


def _check_attacks_fit_defenses(config: dict[str, Any], entry: dict[str, Any],
                                where: str) -> None:
    """Every attack of the entry has something to attack behind each of its defenses
    (``Attack.defense_error``)."""
    for attack in config["attacks"]:
        if attack["name"] not in entry.get("attacks", [attack["name"]]):
            continue
        for defense in config["defenses"]:
            if defense["name"] not in entry.get("defenses", [defense["name"]]):
                continue
            problem = ATTACKS[attack["name"]].defense_error(DEFENSES[defense["name"]])
            if problem:
                raise ConfigError(f"{where}: {problem}; list the defenses it fits in a "
                                  "protocol entry of its own (defenses: [...])")


def _check_entry_tuning(config: dict[str, Any], entry: dict[str, Any], where: str) -> None:
    """An entry's ``tune`` names attacks it runs that have a tuning budget (``tune`` on the
    attack's entry: the trials and images); one not configured is not run, as in the
    entry's filters."""
    configured = {a["name"]: a for a in config["attacks"]}
    runs = [name for name in configured if name in entry.get("attacks", [name])]
    for name in entry.get("tune", []):
        _registered(f"{where}.tune", "attack", name, ATTACKS)
        if name not in configured:
            continue
        if name not in runs:
            raise ConfigError(f"{where}.tune: attack {name!r} does not run under this entry "
                              f"(its attacks: {', '.join(runs)}); tune one of those")
        if "tune" not in configured[name]:
            raise ConfigError(f"{where}.tune: attack {name!r} has no tuning budget; give its "
                              "entry under attacks a tune: {trials: N, images: M}")


def _check_repeated_protocols(config: dict[str, Any]) -> None:
    """A protocol may appear in several entries, each running its own attacks on its own
    defenses (an expensive attack on the settings that need it), at its own batch size or
    rounds, but no attack twice on one setting (defense, batch size, round), and entries
    that share a setting share its seeds and image count (the report pairs a setting's
    attacks by run)."""
    privacy = config["privacy"]
    defenses = [d["name"] for d in config["defenses"]]
    attacks = [a["name"] for a in config["attacks"]]
    seen: dict[tuple, tuple[int, tuple, set[str]]] = {}
    for i, entry in enumerate(privacy["protocols"]):
        where = f"config error at privacy.protocols[{i}]"
        sizes = entry_sizes(config, entry)
        protocol = Protocol.from_dict(entry).id
        runs = (sorted(entry.get("seeds", privacy["seeds"])), sizes["num_images"])
        ran = {a for a in entry.get("attacks", attacks) if a in attacks}
        for defense in [d for d in entry.get("defenses", defenses) if d in defenses]:
            for model_round in sizes["model_rounds"]:
                setting = (protocol, sizes["batch_size"], defense, model_round)
                first, first_runs, taken = seen.setdefault(setting, (i, runs, set()))
                named = (f"protocol {protocol!r}, batch size {sizes['batch_size']}, defense "
                         f"{defense!r}, round {model_round}")
                if runs != first_runs:
                    raise ConfigError(f"{where}: {named} is also in entry {first} with seeds "
                                      f"{first_runs[0]} and num_images {first_runs[1]}; "
                                      "entries that share a setting share both")
                twice = sorted(ran & taken)
                if twice:
                    raise ConfigError(f"{where}: {named} already runs attack {twice[0]!r} "
                                      f"(entry {first}); each attack once per setting")
                taken |= ran


def _check_defense_aware_sums(config: dict[str, Any], protocol: Protocol,
                              entry: dict[str, Any], where: str) -> None:
    """A defense-aware attack (one that knows the ``defense protocol``) runs on a sum of
    users only where the defense says its sum can be modelled (``aggregate_error``)."""
    if protocol.users == 1:
        return
    num_images = protocol.users * entry_sizes(config, entry)["batch_size"]
    for defense in config["defenses"]:
        problem = DEFENSES[defense["name"]].aggregate_error(protocol.users)
        if not problem or defense["name"] not in entry.get("defenses", [defense["name"]]):
            continue
        impl = create_defense(defense["name"], defense["ratios"][0], defense["params"])
        for attack in config["attacks"]:
            if attack["name"] not in entry.get("attacks", [attack["name"]]):
                continue
            known = create_attack(attack["name"], attack["params"]).knowledge(
                impl, protocol, num_images)
            if "defense protocol" in known:
                raise ConfigError(f"{where}: attack {attack['name']!r} is defense-aware, "
                                  f"but {problem}; leave {defense['name']} out of this "
                                  "protocol's defenses or the attack out of its attacks")


def _check_protocol_fits(config: dict[str, Any], protocol: Protocol, entry: dict[str, Any],
                         where: str) -> None:
    sizes = entry_sizes(config, entry)
    case = protocol.users * sizes["batch_size"]
    if sizes["num_images"] % case:
        raise ConfigError(f"{where}: num_images ({sizes['num_images']}) must be a multiple "
                          f"of users x batch_size ({case})")
    if protocol.algorithm == "fedsgd" and protocol.local_steps != 1:
        raise ConfigError(f"{where}: fedsgd sends one gradient: local_steps must be 1")
    if protocol.local_batch_size > sizes["batch_size"]:
        raise ConfigError(f"{where}: local_batch_size ({protocol.local_batch_size}) exceeds "
                          f"the user's batch (batch_size {sizes['batch_size']})")
    plain = [d["model"] for d in config["datasets"] if d["model"] not in MODELS_WITH_BATCHNORM]
    if protocol.batchnorm == "train" and plain:
        raise ConfigError(f"{where}: batchnorm train changes nothing for models without "
                          f"BatchNorm ({', '.join(sorted(set(plain)))})")
    for attack in config["attacks"]:
        if attack["name"] in entry.get("attacks", [attack["name"]]):
            problem = ATTACKS[attack["name"]].protocol_error(protocol)
            if problem:
                raise ConfigError(f"{where}: {problem}")
