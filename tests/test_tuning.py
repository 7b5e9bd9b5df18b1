"""Attacks tuned on public data (jobs.tune): the study reads only the attacker's own
training images, starts from the configured parameters, resumes to its budget, and its
choice reaches the privacy jobs, the CSVs and the report."""

from __future__ import annotations

import json
import math
from pathlib import Path

import optuna
import pandas as pd
import pytest
import torch
import yaml

from attacks import ATTACKS
from attacks.inverting_gradients import InvertingGradients
from conftest import REPO, poisoned_loader
from dgp import scenario
from dgp.attack import Attack
from dgp.params import FloatRange
from jobs import privacy, tune
from jobs.aggregate import tuning_table
from jobs.config import validate_config
from jobs.plan import ConfigError
from report.render import main as render_main
from tests.test_report import make_csv

DIGITS = {"name": "digits", "model": "lenet", "image_size": 16}
QUICK = {"iterations": 4, "tv_weight": 0.0}  # a trial in a fraction of a second

optuna.logging.set_verbosity(optuna.logging.WARNING)


def _tune(tmp_path: Path, trials: int, name: str = "study", images: int = 2) -> dict:
    return tune.run(DIGITS, "dgp", 0.8, {}, "ig", QUICK, trials=trials, images=images,
                    batch_size=1, storage_path=tmp_path / f"{name}.db", device="cpu")


def _trials(tmp_path: Path, name: str = "study") -> list[optuna.trial.FrozenTrial]:
    storage = f"sqlite:///{tmp_path / f'{name}.db'}"
    (summary,) = optuna.get_all_study_summaries(storage)
    return optuna.load_study(study_name=summary.study_name, storage=storage).trials


def _study(tmp_path: Path, monkeypatch, name: str, loader=None) -> list[tuple]:
    """Each trial's (value, parameters) of a fresh 3-trial study, under ``loader``."""
    with monkeypatch.context() as patch:
        if loader is not None:
            patch.setattr(tune, "load_dataset", loader)
        _tune(tmp_path, 3, name)
    return [(t.value, t.params) for t in _trials(tmp_path, name)]


def test_tuning_never_reads_an_attacked_image(tmp_path, monkeypatch):
    clean = _study(tmp_path, monkeypatch, "clean")
    noise = poisoned_loader(tune.load_dataset, "test", torch.rand_like)
    attacked_poisoned = _study(tmp_path, monkeypatch, "test_poisoned", noise)
    inverted = poisoned_loader(tune.load_dataset, "train", lambda images: 1 - images)
    public_poisoned = _study(tmp_path, monkeypatch, "train_poisoned", inverted)
    assert clean == attacked_poisoned  # the users' images change nothing, bit for bit
    assert [v for v, _ in clean] != [v for v, _ in public_poisoned]  # the public ones do


def test_the_public_images_are_training_images_outside_the_public_sample():
    train = tune.load_dataset(DIGITS, split="train")
    chosen = tune.tuning_indices(train, 20)
    size = len(train.dataset)
    public = set(list(range(0, size, size // scenario.PUBLIC_SAMPLES))[:scenario.PUBLIC_SAMPLES])
    assert len(set(chosen)) == 20 and not public & set(chosen)
    assert max(chosen) < size and chosen == tune.tuning_indices(train, 20)


def test_trial_0_is_the_default_and_a_study_resumes_to_its_budget(tmp_path):
    first = _tune(tmp_path, 2)
    trials = _trials(tmp_path)
    assert trials[0].params == {"lr": 0.1, "tv_weight": 0.0} == first["default"]["params"]
    assert first["default"]["psnr"] == trials[0].value
    assert first["tuned"]["psnr"] == max(t.value for t in trials) >= first["default"]["psnr"]
    _tune(tmp_path, 2)  # a finished study: no trial added
    assert [t.params for t in _trials(tmp_path)] == [t.params for t in trials]
    # A run killed during its third trial leaves it running; the next run finishes the
    # budget of 4 with the first two kept and new parameters after them.
    study = optuna.load_study(study_name=optuna.get_all_study_summaries(
        f"sqlite:///{tmp_path / 'study.db'}")[0].study_name,
        storage=f"sqlite:///{tmp_path / 'study.db'}")
    study.ask()
    resumed = _tune(tmp_path, 4)
    finished = [t for t in _trials(tmp_path) if t.state.is_finished()]
    assert resumed["finished_trials"] == len(finished) == 4
    assert [t.value for t in finished[:2]] == [t.value for t in trials]
    assert len({json.dumps(t.params, sort_keys=True) for t in finished}) == 4


def test_a_diverging_trial_is_pruned_not_fatal(tmp_path, monkeypatch):
    monkeypatch.setattr(tune, "public_psnr", lambda setting, params: math.nan)
    record = _tune(tmp_path, 2, images=1)
    assert (record["finished_trials"], record["pruned_trials"]) == (2, 2)
    assert record["default"]["psnr"] is None and record["tuned"]["psnr"] is None
    assert record["tuned"]["params"] == record["default"]["params"]  # nothing beat them


def test_a_tuning_space_must_fit_the_parameters():
    with pytest.raises(TypeError, match="tv_weight"):
        type("Bad", (InvertingGradients,), {"tuning_space": {"tv_weight": FloatRange(-1, 1)}})
    with pytest.raises(TypeError, match="no parameter"):
        type("Bad", (InvertingGradients,), {"tuning_space": {"momentum": FloatRange(0, 1)}})
    for attack in ATTACKS.values():  # each declared range widens to hold the default
        assert set(attack().tuning_ranges()) == set(attack.tuning_space)
    assert Attack.tuning_space == {}


def test_a_tuning_job_leaves_out_what_its_protocol_makes_inert():
    """The soft masks only model a sum of users; the band penalty is left out of one."""
    from dgp.protocol import Protocol

    adaptive = ATTACKS["ig_adaptive"]()
    assert set(adaptive.tuning_ranges(Protocol())) == {"lr", "tv_weight", "band_weight"}
    assert set(adaptive.tuning_ranges(Protocol(users=3))) == {"lr", "tv_weight",
                                                              "mask_temperature"}
    assert set(ATTACKS["ig"]().tuning_ranges(Protocol(users=3))) == {"lr", "tv_weight"}


def _smoke_with(tune_entry, attack: str = "ig") -> dict:
    config = yaml.safe_load((REPO / "config" / "smoke.yaml").read_text())
    for entry in config["attacks"]:
        entry.pop("tune", None)
        if entry["name"] == attack:
            entry["tune"] = tune_entry
    return config


@pytest.mark.parametrize(("entry", "attack", "message"), [
    ({"trials": 0, "images": 1}, "ig", r"attacks\[0\]\.tune\.trials: 0 is less than"),
    ({"trials": 2, "images": -1}, "ig", r"attacks\[0\]\.tune\.images: -1 is less than"),
    ({"trials": 2.5, "images": 1}, "ig", r"attacks\[0\]\.tune\.trials: 2\.5 is not of type"),
    ({"trials": 2}, "ig", r"attacks\[0\]\.tune: 'images' is a required"),
    ({"trials": 2, "images": 1}, "learned_inversion",
     r"attacks\[2\]\.tune: attack 'learned_inversion' has nothing to tune"),
])
def test_bad_tune_entries_are_refused_by_name(entry, attack, message):
    with pytest.raises(ConfigError, match=message):
        validate_config(_smoke_with(entry, attack))


def test_every_setting_of_a_tuned_attack_has_one_tuning_job():
    from jobs.plan import privacy_jobs, tuning_jobs

    config = validate_config(_smoke_with({"trials": 2, "images": 1}, "idlg_adaptive"))
    settings = {tuple(job[k] for k in ("dataset", "protocol", "defense", "ratio"))
                for job in privacy_jobs(config) if job["attack"] == "idlg_adaptive"}
    jobs = tuning_jobs(config)
    assert len(jobs) == len(settings) and {j["attack"] for j in jobs} == {"idlg_adaptive"}


def test_a_protocol_entry_tunes_only_the_attacks_it_lists():
    """An entry's own tune list picks where the budget is spent: the pruning settings
    tuned, the others attacked with the configured parameters, written apart."""
    from jobs.plan import privacy_jobs, tuning_jobs

    config = _smoke_with({"trials": 2, "images": 1}, "idlg_adaptive")
    config["privacy"]["protocols"] = [
        {"algorithm": "fedsgd", "defenses": ["dgp", "topk"], "attacks": ["ig", "idlg_adaptive"],
         "tune": ["idlg_adaptive"]},
        {"algorithm": "fedsgd", "defenses": ["none"], "attacks": ["ig", "idlg_adaptive"],
         "tune": []},
        {"algorithm": "fedavg", "defenses": ["dgp"], "attacks": ["idlg_adaptive"]}]
    jobs = privacy_jobs(validate_config(config))
    tuned = {(j["protocol"], j["defense"]) for j in jobs if j["tuned"]}
    assert tuned == {("fedsgd", "dgp"), ("fedsgd", "topk"), ("fedavg-s1-lr0.1", "dgp")}
    assert all(j["attack"] == "idlg_adaptive" for j in jobs if j["tuned"])
    assert all(("-tuned/" in j["stem"]) == bool(j["tuned"]) for j in jobs)
    assert {(j["protocol"], j["defense"]) for j in tuning_jobs(validate_config(config))} == tuned


@pytest.mark.parametrize(("tune", "message"), [
    (["no_such_attack"], r"protocols\[0\]\.tune: unknown attack 'no_such_attack'"),
    (["ig"], r"protocols\[0\]\.tune: attack 'ig' does not run under this entry"),
    (["idlg_adaptive"], r"protocols\[0\]\.tune: attack 'idlg_adaptive' has no tuning budget"),
])
def test_bad_protocol_tune_lists_are_refused_by_name(tune, message):
    config = _smoke_with({"trials": 2, "images": 1}, "ig")
    config["privacy"]["protocols"] = [
        {"algorithm": "fedsgd", "attacks": ["idlg_adaptive"], "tune": tune}]
    with pytest.raises(ConfigError, match=message):
        validate_config(config)


def test_tuned_parameters_reach_the_privacy_job(tmp_path):
    record = _tune(tmp_path, 1, images=1)
    tuning_json = tmp_path / "tuning.json"
    tuning_json.write_text(json.dumps({**record, "tuned": {"params": {"lr": 0.05},
                                                             "psnr": 0.0}}))
    out = tmp_path / "privacy.json"
    privacy.main(["--dataset", json.dumps(DIGITS), "--defense", "dgp", "--ratio", "0.8",
                  "--attack", "ig", "--attack-params", json.dumps(QUICK), "--device", "cpu",
                  "--tuned", str(tuning_json), "--out-json", str(out),
                  "--out-png", str(tmp_path / "privacy.png")])
    tuned = json.loads(out.read_text())
    assert tuned["job"]["tuned"] is True and tuned["tuned_params"] == {"lr": 0.05}
    by_hand, _ = privacy.run(DIGITS, "dgp", 0.8, {}, "ig", {**QUICK, "lr": 0.05}, seed=0,
                             num_images=1, batch_size=1, device="cpu")
    assert by_hand["job"]["tuned"] is False
    assert [r["psnr"] for r in tuned["rows"]] == [r["psnr"] for r in by_hand["rows"]]


def test_tuning_csv_and_the_report_name_tuned_attacks(tmp_path):
    record = _tune(tmp_path, 2, images=1)
    path = tmp_path / "tuning" / "ig.json"
    path.parent.mkdir()
    path.write_text(json.dumps(record))
    table = tuning_table([path])
    assert table.loc[0, "attack"] == "ig" and table.loc[0, "trials"] == 2
    assert {"param_lr", "param_tv_weight"} <= set(table.columns)
    tuning_csv = tmp_path / "tuning.csv"
    table.to_csv(tuning_csv, index=False)
    csv = make_csv(tmp_path)
    rows = pd.read_csv(csv)
    rows["tuned"] = rows["attack"] == "ig"
    rows.to_csv(csv, index=False)
    out = tmp_path / "report.html"
    render_main(["--privacy", str(csv), "--tuning", str(tuning_csv), "--out", str(out)])
    text = out.read_text()
    assert "Attacks tuned on public data" in text and "ig (tuned)" in text
    assert "dlg (tuned)" not in text
