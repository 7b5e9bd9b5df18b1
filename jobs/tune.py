"""One tuning job: an attack's parameters searched on the attacker's own public data.

For one (dataset, protocol, defense, ratio, attack), an Optuna study (TPE, seeded) searches
the attack's ``tuning_space`` to maximise the mean PSNR the attack reaches on ``images``
public images: images of the training split, never the test split that holds the users'
attacked images. The attacker can score these reconstructions because the images are its
own. Each public image is run as a privacy job runs a case (``jobs.privacy``: same
protocol, defense and batch size), with its own model draw from a seed space no privacy job
uses (the server knows how models are initialised, not the user's draw) and the defense's
random draws made by the attacker. Every trial sees the same images and draws, so trials
differ only by their parameters. Trial 0 is the configured parameters, so the tuned ones
score at least as well on this objective. As LeakPro tunes its attacks
(``hyperparameter_tuning/optuna.py``).

The study lives in an SQLite file next to the JSON output: a killed job resumes, and a
rerun adds only the trials missing from the budget. Writes a JSON file (atomically) with
the setting, the budget, the default and tuned parameters and their public PSNR.

Usable by hand: ``python -m jobs.tune --help``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
import torch

from attacks import create_attack
from defenses import Defense, create_defense
from dgp.data import ImageData, load_dataset
from dgp.device import resolve_device
from dgp.io import write_json
from dgp.params import Choice, FloatRange, Space
from dgp.protocol import Protocol
from dgp.scenario import public_indices
from jobs.options import add_setting_options
from jobs.plan import dataset_id
from jobs.privacy import attack_all, build_job
from jobs.quick_exit import run_and_exit

# The seed of the tuning job's draws (models, defense noise, attack starts): every case
# stream is ``privacy.case_stream(TUNING_SEED, case)``, and privacy seeds are below 2**32
# (the config schema), so no tuning draw is a privacy job's.
TUNING_SEED = 2**42
# The first trials TPE samples at random before it models the results (Optuna's default
# is 10, more than a small budget has).
STARTUP_TRIALS = 4
FINISHED = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)


def tuning_indices(train: ImageData, count: int) -> list[int]:
    """The ``count`` training images the attacker attacks itself: a seeded draw among those
    outside its public sample (``dgp.scenario.public_indices``, whose class means it knows)."""
    size = len(train.dataset)
    public = set(public_indices(size))
    pool = [i for i in range(size) if i not in public] or list(range(size))
    order = torch.randperm(len(pool), generator=torch.Generator().manual_seed(TUNING_SEED))
    return [pool[i] for i in order[:count].tolist()]


@dataclass
class _Setting:
    """What every trial shares: the public data, the defense, the draws, the attack."""

    dataset: dict[str, Any]
    train: ImageData
    indices: list[int]
    defense: Defense
    attack: str
    attack_params: dict[str, Any]
    batch_size: int
    device: torch.device
    protocol: Protocol


def public_psnr(setting: _Setting, params: dict[str, Any]) -> float:
    """The attack's mean PSNR over the public images with ``params`` over its configured
    ones (NaN where a run diverged)."""
    attack = create_attack(setting.attack, {**setting.attack_params, **params})
    job = build_job(setting.train, setting.indices, setting.train, setting.dataset["model"],
                    setting.defense, attack, TUNING_SEED, setting.device, None,
                    setting.protocol)
    rows, _, _ = attack_all(job, setting.batch_size)
    return sum(row["psnr"] for row in rows) / len(rows)


def _suggest(trial: optuna.Trial, name: str, space: Space) -> Any:
    if isinstance(space, Choice):
        return trial.suggest_categorical(name, list(space.values))
    if isinstance(space, FloatRange):
        return trial.suggest_float(name, space.low, space.high, log=space.log)
    raise TypeError(f"parameter {name}: unknown search space {space!r}")


def objective(setting: _Setting,
              ranges: dict[str, Space]) -> Callable[[optuna.Trial], float]:
    """The study's objective: a trial's public PSNR; a diverged trial is pruned (it counts
    towards the budget, never wins, never stops the study)."""

    def score(trial: optuna.Trial) -> float:
        params = {name: _suggest(trial, name, space) for name, space in ranges.items()}
        value = public_psnr(setting, params)
        if not math.isfinite(value):
            raise optuna.TrialPruned(f"non-finite public PSNR {value}")
        return value

    return score


def open_study(storage_path: Path, key: dict[str, Any]) -> optuna.Study:
    """The study of this setting in ``storage_path`` (created or resumed). Its name is a
    hash of the setting (``key``), so a changed setting starts afresh. A trial a killed run
    left running stays so: only finished trials count (``complete_budget``)."""
    name = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    storage = optuna.storages.RDBStorage(f"sqlite:///{storage_path}")
    return optuna.create_study(storage=storage, study_name=name, direction="maximize",
                               load_if_exists=True)


def _finished(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    return study.get_trials(deepcopy=False, states=FINISHED)


def complete_budget(study: optuna.Study, setting: _Setting, ranges: dict[str, Space],
                    defaults: dict[str, Any], trials: int) -> None:
    """Run the trials missing from ``trials``: first the configured parameters (unless a
    finished trial has them), then TPE's, seeded by how many trials are already done so
    that a resumed study draws new parameters, deterministically."""
    done = _finished(study)
    if len(done) >= trials:
        return
    waiting = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.WAITING,))
    if not any(t.params == defaults for t in done) and not waiting:
        study.enqueue_trial(defaults)
    study.sampler = optuna.samplers.TPESampler(seed=len(study.trials),
                                               n_startup_trials=STARTUP_TRIALS)
    study.optimize(objective(setting, ranges), n_trials=trials - len(done))


def summary(study: optuna.Study, defaults: dict[str, Any]) -> dict[str, Any]:
    """The default and tuned parameters and their public PSNR (None: diverged); ties go to
    the earlier trial, so the defaults win a tie."""
    done = _finished(study)
    scored = [t for t in done if t.state == optuna.trial.TrialState.COMPLETE]
    default = next((t for t in done if t.params == defaults), None)
    best = max(scored, key=lambda t: t.value, default=None)
    return {
        "default": {"params": defaults,
                    "psnr": default.value if default is not None else None},
        "tuned": {"params": best.params if best is not None else defaults,
                  "psnr": best.value if best is not None else None},
        "finished_trials": len(done),
        "pruned_trials": len(done) - len(scored),
        "seconds": round(sum((t.datetime_complete - t.datetime_start).total_seconds()
                             for t in done), 3),
    }


def run(dataset: dict[str, Any], defense: str, ratio: float, defense_params: dict[str, Any],
        attack: str, attack_params: dict[str, Any], trials: int, images: int,
        batch_size: int, storage_path: str | Path, device: str = "auto",
        protocol: dict[str, Any] | None = None) -> dict[str, Any]:
    """Tune ``attack`` against the setting for ``trials`` trials in all (resuming the study
    in ``storage_path``) on ``images`` public images, rounded up to whole cases (``users``
    batches of ``batch_size``); return the job's record."""
    threat = Protocol.from_dict(protocol or {})
    configured = create_attack(attack, attack_params)
    ranges = configured.tuning_ranges(threat)
    if not ranges:
        raise ValueError(f"attack {attack!r} declares no tuning space: nothing to tune")
    train = load_dataset(dataset, split="train")  # never the test split: the users' images
    case = batch_size * threat.users
    setting = _Setting(dataset, train, tuning_indices(train, case * math.ceil(images / case)),
                       create_defense(defense, ratio, defense_params), attack,
                       configured.params, batch_size, resolve_device(device), threat)
    job = {"dataset": dataset_id(dataset), "model": dataset["model"], "protocol": threat.id,
           "batch_size": batch_size, "defense": defense, "ratio": ratio, "attack": attack}
    key = {**job, "dataset": dataset, "defense_params": defense_params,
           "attack_params": configured.params, "protocol": threat.as_dict(),
           "images": images, "batch_size": batch_size}
    study = open_study(Path(storage_path), key)
    defaults = {name: configured.params[name] for name in ranges}
    complete_budget(study, setting, ranges, defaults, trials)
    return {"job": job, "trials": trials, "images": len(setting.indices),
            "space": {name: repr(space) for name, space in ranges.items()},
            **summary(study, defaults)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_setting_options(parser)
    parser.add_argument("--attack", required=True)
    parser.add_argument("--attack-params", type=json.loads, default={})
    parser.add_argument("--protocol", type=json.loads, default={},
                        help="the federated protocol as JSON (dgp.protocol); default FedSGD")
    parser.add_argument("--trials", type=int, required=True, help="the study's trial budget")
    parser.add_argument("--images", type=int, required=True,
                        help="public (training-split) images each trial attacks")
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--out-json", required=True,
                        help="the record; the study is kept beside it (same name, .db)")
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    began = time.perf_counter()
    out = Path(args.out_json)
    out.parent.mkdir(parents=True, exist_ok=True)
    record = run(args.dataset, args.defense, args.ratio, args.defense_params, args.attack,
                 args.attack_params, args.trials, args.images, args.batch_size,
                 out.with_suffix(".db"), args.device, args.protocol)
    record["job"]["job_seconds"] = round(time.perf_counter() - began, 3)
    write_json(out, record)
    print(f"{args.attack}: public PSNR {record['default']['psnr']} (default) -> "
          f"{record['tuned']['psnr']} (tuned {record['tuned']['params']}), "
          f"{record['finished_trials']} trials")


if __name__ == "__main__":
    run_and_exit(main)
