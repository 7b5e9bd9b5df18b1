"""Learning to Invert: it learns from public images only, beats the class-mean floor
undefended, and is validated and deterministic like every attack."""

from __future__ import annotations

import copy

import pytest
import torch

from attacks import ATTACKS, AttackTarget, create_attack
from attacks.learned_inversion import LearnedInversion
from conftest import poisoned_loader
from dgp.protocol import Protocol
from jobs import privacy
from jobs.config import validate_config
from jobs.plan import ConfigError
from tests.test_config import broken

DIGITS = {"name": "digits", "model": "lenet", "image_size": 16}
# A short training: a few seconds a run on one core.
QUICK = {"public_images": 64, "shifts": 1, "hidden": 16, "epochs": 2}


def test_beats_the_class_mean_floor_undefended():
    # Measured: 23.9 / 27.1 / 23.5 dB against class-mean floors of 16.3 / 18.3 / 17.3.
    params = {"public_images": 2048, "shifts": 0, "hidden": 128, "epochs": 30, "lr": 3e-3}
    record, _ = privacy.run(DIGITS, "none", 0, {}, "learned_inversion", params, seed=0,
                            num_images=3, batch_size=1, device="cpu")
    for row in record["rows"]:
        assert row["status"] == "ok"
        assert row["psnr"] > row["class_floor_psnr"] + 3, row
    assert record["job"]["knowledge"] == "public data, defense protocol"


def _trained_weights(monkeypatch, loader=None) -> tuple[list[dict], list[float]]:
    """The inverters a privacy job trains (their weights) and its rows' PSNR."""
    inverters = []
    train = LearnedInversion.train_inverter

    def spy(self, target, generator=None):
        inverter = train(self, target, generator)
        inverters.append(copy.deepcopy(inverter.network.state_dict()))
        return inverter

    with monkeypatch.context() as patch:
        patch.setattr(LearnedInversion, "train_inverter", spy)
        if loader is not None:
            patch.setattr(privacy, "load_dataset", loader)
        record, _ = privacy.run(DIGITS, "none", 0, {}, "learned_inversion", QUICK, seed=0,
                                num_images=2, batch_size=1, device="cpu")
    return inverters, [row["psnr"] for row in record["rows"]]


def _same(first: list[dict], second: list[dict]) -> bool:
    return all(torch.equal(a[key], b[key]) for a, b in zip(first, second, strict=True)
               for key in a)


def test_training_never_reads_an_attacked_image(monkeypatch):
    clean, clean_psnr = _trained_weights(monkeypatch)
    noise = poisoned_loader(privacy.load_dataset, "test", torch.rand_like)
    attacked_poisoned, poisoned_psnr = _trained_weights(monkeypatch, noise)
    inverted = poisoned_loader(privacy.load_dataset, "train", lambda images: 1 - images)
    public_poisoned, _ = _trained_weights(monkeypatch, inverted)
    assert poisoned_psnr != clean_psnr  # the attacked images were replaced
    assert _same(clean, attacked_poisoned)  # yet the inverters are the same, bit for bit
    assert not _same(clean, public_poisoned)  # while the public images shape them


def test_only_an_attack_that_trains_on_public_images_gets_them():
    def public(attack: str, params: dict):
        return privacy._setup(DIGITS, "none", 0, {}, attack, params, 0, 1,
                              torch.device("cpu"), None, Protocol()).public

    assert public("ig", {}).images is None
    trained_on = public("learned_inversion", {"public_images": 100})
    assert trained_on.images.shape == (100, 1, 16, 16) and trained_on.labels.shape == (100,)
    everything = public("learned_inversion", {"public_images": 10_000})
    assert len(everything.images) == 1437  # the whole training split, no test image


def _target(defense: str, ratio: float) -> AttackTarget:
    """One user's defended update of a digit, as the privacy job builds it."""
    job = privacy._setup(DIGITS, defense, ratio, {}, "learned_inversion", QUICK, 0, 1,
                         torch.device("cpu"), None, Protocol())
    case = privacy._case(job, 0)
    images, labels = job.data.samples(job.indices)
    _, inputs, targets = privacy._user_inputs(job, case, images, labels)
    shared, _ = privacy._shared_gradient(job, case, inputs, targets, "user")
    return AttackTarget(case.model, shared, 1, (1, 16, 16), 10, privacy._box(job.data),
                        job.defense, job.public, None, job.protocol)


@pytest.mark.parametrize("defense,ratio", [("dgp", 0.95), ("mixup", 4)])
def test_the_inverter_is_a_function_of_the_generator(defense, ratio):
    target = _target(defense, ratio)
    attack = create_attack("learned_inversion", QUICK)

    def weights(seed: int) -> list[dict]:
        inverter = attack.train_inverter(target, torch.Generator().manual_seed(seed))
        return [inverter.network.state_dict()]

    assert _same(weights(0), weights(0))
    assert not _same(weights(0), weights(1))


@pytest.mark.parametrize("params,message", [
    ({"hidden": 0}, "parameter hidden must be an integer >= 1"),
    ({"lr": 0}, "parameter lr must be a number > 0"),
    ({"shifts": -1}, "parameter shifts must be an integer >= 0"),
    ({"label_rule": "guess"}, "parameter label_rule must be one of"),
    ({"batch": 64}, "no parameter"),
])
def test_bad_parameters_are_refused_naming_the_attack(params, message):
    assert ATTACKS["learned_inversion"] is LearnedInversion
    with pytest.raises(ConfigError, match=rf"attack 'learned_inversion'.*{message}"):
        validate_config(broken(lambda c: c["attacks"].append(
            {"name": "learned_inversion", "params": params})))


def test_fedsgd_and_fedavg_of_one_user_only():
    def add(config, protocol: int) -> None:
        if all(a["name"] != "learned_inversion" for a in config["attacks"]):
            config["attacks"].append({"name": "learned_inversion"})
        config["privacy"]["protocols"][protocol]["attacks"].append("learned_inversion")

    validate_config(broken(lambda c: add(c, 1)))  # fedavg, 2 local steps
    with pytest.raises(ConfigError, match="'learned_inversion' cannot invert a sum of 4"):
        validate_config(broken(lambda c: add(c, 2)))
