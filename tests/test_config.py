"""Bad configs give one clear error, before anything runs."""

from __future__ import annotations

import copy
import subprocess
import sys

import pytest
import yaml

from conftest import REPO
from jobs.config import validate_config
from jobs.plan import ConfigError, privacy_jobs, training_jobs

SMOKE = yaml.safe_load((REPO / "config" / "smoke.yaml").read_text())


def broken(edit) -> dict:
    config = copy.deepcopy(SMOKE)
    edit(config)
    return config


def test_smoke_config_is_valid_and_gets_defaults():
    config = validate_config(SMOKE)
    assert config["defenses"][0]["ratios"] == [0]
    assert config["datasets"][0]["download"] is False


@pytest.mark.parametrize("edit,message", [
    (lambda c: c["datasets"][0].update(name="imagenet"), "unknown dataset 'imagenet'"),
    (lambda c: c["datasets"][0].update(model="vit"), "unknown model 'vit'"),
    (lambda c: c["defenses"][1].update(name="soteriaa"), "unknown defense 'soteriaa'"),
    (lambda c: c["attacks"][0].update(name="gradinv"), "unknown attack 'gradinv'"),
    (lambda c: c["defenses"][1].update(ratios=[1.5]), "dgp.*ratio < 1"),
    (lambda c: c["defenses"][3].update(ratios=[-0.2]), "topk.*ratio"),
    (lambda c: c["defenses"][5].update(ratios=[-1]), "dp_gaussian.*ratio >= 0"),
    (lambda c: c["defenses"][7].update(ratios=[2.5]), "qsgd.*integer"),
    (lambda c: c["defenses"][10].update(params={"policy": "1-2-x"}), "ats policy"),
    (lambda c: c["defenses"][8].update(training={"epochs": 0}),
     r"defenses\[8\]\.training\.epochs"),
    (lambda c: c["defenses"][0].update(ratios=[0.3]), "only ratio 0"),
    (lambda c: c["datasets"].append({"name": "imagefolder", "model": "lenet",
                                     "root": "/no/such/folder"}),
     "imagefolder root '/no/such/folder' does not exist"),
    (lambda c: c["datasets"].append({"name": "cifar10", "model": "resnet18",
                                     "root": "/no/such/root"}),
     "cifar10 files not found under data root '/no/such/root'"),
    (lambda c: c.update(colour="blue"), "Additional properties are not allowed"),
    (lambda c: c["attacks"][0]["params"].update(iteratons=5), "no parameter"),
    (lambda c: c["attacks"][0]["params"].update(iterations=-5),
     r"attacks\[0\]: attack '\w+' parameter iterations must be an integer >= 1, got -5"),
    (lambda c: c["attacks"][0]["params"].update(lr=-0.1), "parameter lr must be a number > 0"),
    (lambda c: c["attacks"][0]["params"].update(iterations=2.5), "must be an integer"),
    (lambda c: c["attacks"][0]["params"].update(lr="fast"), "lr must be a number"),
    (lambda c: c["attacks"].append({"name": "rtf", "params": {"bins": 1}}), "bins .* >= 2"),
    (lambda c: c["defenses"][1].update(params={"top_count": "ceil"}), "top_count must be one"),
    (lambda c: c["defenses"][5].update(params={"clip_norm": "big"}),
     r"defenses\[5\]: defense 'dp_gaussian' parameter clip_norm must be a number, got 'big'"),
    (lambda c: c["defenses"][5].update(params={"delta": 1}), "delta must be a number in"),
    (lambda c: c["defenses"][4].update(params={"rescale": "yes"}),
     "rescale must be true or false"),
    (lambda c: c["defenses"][10].update(params={"policy": 3}), "policy must be a string"),
    (lambda c: c["privacy"].update(num_images=3, batch_size=2), "multiple of batch_size"),
    (lambda c: c["defenses"].append({"name": "dgp", "ratios": [0.5]}), "appears twice"),
    (lambda c: c["training"].update(enabled=False), "needs training.enabled"),
    (lambda c: c["training"].update(algorithm="fedprox"), "fedprox"),
    (lambda c: c["attacks"].append({"name": "gradinversion"}), "needs a model with BatchNorm"),
    (lambda c: c.update(report={"gallery_ratios": {"dgp": 0.33}}),
     r"report\.gallery_ratios\.dgp: 0\.33 is not one of its ratios"),
    (lambda c: c.update(report={"gallery_ratios": {"dpg": 0.8}}),
     "'dpg' is not one of the configured defenses"),
])
def test_bad_config_is_one_clear_error(edit, message):
    with pytest.raises(ConfigError, match=message):
        validate_config(broken(edit))


def test_job_list_is_the_full_grid():
    jobs = privacy_jobs(validate_config(SMOKE))
    fedsgd = [j for j in jobs if j["protocol"] == "fedsgd"]
    entries = [p for p in SMOKE["privacy"]["protocols"] if p.get("algorithm") == "fedsgd"]
    assert len(fedsgd) == sum(len(p.get("defenses", SMOKE["defenses"])) * len(p["attacks"])
                              for p in entries) * 2 * 1
    assert {"dataset": "digits", "protocol": "fedsgd", "batch_size": "1", "defense": "dgp",
            "ratio": "0.8", "attack": "ig", "round": "5", "seed": "0", "tuned": "1",
            "stem": "digits/fedsgd/batch1/dgp/0.8/ig-tuned/round5/seed0"} in jobs


@pytest.mark.workflow
def test_workflow_refuses_a_bad_config_and_runs_nothing(tmp_path):
    bad = broken(lambda c: c["defenses"][1].update(name="soteriaa"))
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(bad))
    result = subprocess.run(
        [sys.executable, "-m", "snakemake", "--cores", "1", "--configfile", str(path),
         "--snakefile", str(REPO / "Snakefile"), "--directory", str(tmp_path)],
        capture_output=True, text=True, timeout=300)
    assert result.returncode != 0
    assert "unknown defense 'soteriaa'" in result.stdout + result.stderr
    assert not (tmp_path / "results").exists()


def test_a_defense_can_skip_training():
    config = copy.deepcopy(SMOKE)
    config["privacy"]["model_rounds"] = [0]
    soteria = next(d for d in config["defenses"] if d["name"] == "soteria")
    soteria["training"] = {"enabled": False}
    trained = {job["defense"] for job in training_jobs(validate_config(config))}
    assert "soteria" not in trained and "dgp" in trained
    assert "soteria" in {job["defense"] for job in privacy_jobs(validate_config(config))}
    config["privacy"]["model_rounds"] = [0, 5]
    with pytest.raises(ConfigError, match="disabled for soteria"):
        validate_config(config)


def test_privacy_jobs_can_use_fewer_seeds_than_training():
    config = copy.deepcopy(SMOKE)
    config["seeds"] = [0, 1, 2]
    config["privacy"].update(seeds=[1], model_rounds=[0])
    valid = validate_config(config)
    assert {job["seed"] for job in privacy_jobs(valid)} == {"1"}
    assert {job["seed"] for job in training_jobs(valid)} == {"0", "1", "2"}
    del config["privacy"]["seeds"]  # default: the top-level seeds
    assert {job["seed"] for job in privacy_jobs(validate_config(config))} == {"0", "1", "2"}
    config["privacy"].update(seeds=[7], model_rounds=[0, 5])  # no checkpoint for seed 7
    with pytest.raises(ConfigError, match=r"privacy.seeds.*\[7\]"):
        validate_config(config)


def test_schedule_epochs_may_be_written_as_yaml_integers():
    # yaml reads {16: 0.005} with an int key; it used to crash inside jsonschema
    config = copy.deepcopy(SMOKE)
    config["training"]["lr_schedule"] = {16: 0.005}
    config["defenses"][1]["training"] = {"lr_schedule": {3: 0.01}}
    valid = validate_config(config)
    assert valid["training"]["lr_schedule"] == {"16": 0.005}
    assert valid["defenses"][1]["training"]["lr_schedule"] == {"3": 0.01}


@pytest.mark.parametrize("name", ["config.yaml", "paper.yaml", "smoke.yaml"])
def test_shipped_configs_validate_and_run_defense_aware_attacks(name):
    config = validate_config(yaml.safe_load((REPO / "config" / name).read_text()))
    attacks = {a["name"] for a in config["attacks"]}
    assert any(a.endswith("_adaptive") for a in attacks)  # verdicts by the strongest attacker
    assert len(config["attacks"]) >= 2


def test_the_schema_lists_no_names_of_its_own():
    # the registries are the one list of names: a description that enumerates defenses,
    # attacks, datasets or models drifts from them (it had: 'band_weight', 'random')
    import re

    from attacks import ATTACKS
    from defenses import DEFENSES
    from dgp.data import DATASETS
    from dgp.models import MODELS
    from jobs.config import SCHEMA_PATH

    names = set(ATTACKS) | set(DEFENSES) | set(DATASETS) | set(MODELS)
    descriptions = re.findall(r"description: (?:>\n)?((?:.+\n)+?)(?=\s*\w+:|\Z)",
                              SCHEMA_PATH.read_text())
    for text in descriptions:
        mentioned = {n for n in names if re.search(rf"(?<![\w.-]){n}(?![\w-])", text)}
        assert len(mentioned) <= 1, (mentioned, text)


def test_every_plugin_parameter_is_declared_documented_and_listed():
    """``python -m jobs.parameters`` lists each registered defense's and attack's
    declared parameters, each with a meaning, from the same declarations validation checks."""
    from attacks import ATTACKS
    from defenses import DEFENSES
    from jobs.parameters import parameter_rows

    for kind, registry in (("defense", DEFENSES), ("attack", ATTACKS)):
        rows = parameter_rows(kind, registry)
        for name, cls in registry.items():
            for key, param in cls.parameters.items():
                assert param.doc, f"{kind} {name} parameter {key} has no doc"
                assert any(row.startswith(f"| {kind} `{name}` | `{key}` |") for row in rows)
    listing = subprocess.run([sys.executable, "-m", "jobs.parameters"], cwd=REPO,
                             capture_output=True, text=True, check=True).stdout
    assert "| defense `precode` | `kl_unit` | `'bits'` | bits, nats |" in listing


def test_qsgd_under_a_sum_of_users_refuses_defense_aware_attacks_only():
    # Its likelihood is one user's quantised upload (and the sum carries one norm per user):
    # a defense-aware attack of the sum would crash or model the wrong observation.
    def with_qsgd(c, attacks):
        c["privacy"]["protocols"][2].update(defenses=["none", "qsgd"], attacks=attacks)

    with pytest.raises(ConfigError, match=r"protocols\[2\].*idlg_adaptive.*'qsgd'.*4 users"):
        validate_config(broken(lambda c: with_qsgd(c, ["idlg_adaptive"])))
    passive = validate_config(broken(lambda c: with_qsgd(c, ["ig"])))
    summed = {(j["defense"], j["attack"]) for j in privacy_jobs(passive)
              if j["defense"] == "qsgd" and j["protocol"] == "fedsgd-n4"}
    assert summed == {("qsgd", "ig")}


def test_a_protocol_may_run_its_own_seeds():
    """A sum of users has U times fewer runs per job: its own seeds give it enough runs,
    and they need checkpoints as privacy.seeds do."""
    config = copy.deepcopy(SMOKE)
    config["seeds"] = [0, 1, 2]
    config["privacy"].update(seeds=[0], model_rounds=[0], num_images=3)
    config["privacy"]["protocols"] = [{"algorithm": "fedsgd", "attacks": ["ig"]},
                                      {"users": 3, "seeds": [0, 1, 2, 5], "defenses": ["none"],
                                       "attacks": ["idlg_adaptive"]}]
    jobs = privacy_jobs(validate_config(config))
    assert {j["seed"] for j in jobs if j["protocol"] == "fedsgd"} == {"0"}
    assert {j["seed"] for j in jobs if j["protocol"] != "fedsgd"} == {"0", "1", "2", "5"}
    config["privacy"]["model_rounds"] = [0, 5]  # no checkpoint for seed 5
    with pytest.raises(ConfigError, match=r"privacy.protocols\[1\].seeds.*\[5\]"):
        validate_config(config)
