"""Decoding across rounds (``multi_round``; Carlini et al.'s observation that one private
image in many encodings gives it away): the rounds' estimates combine, the privacy job hands
the attack the same user's later rounds with fresh defense draws, and validation keeps the
attack to data defenses."""

from __future__ import annotations

import pytest
import torch

from attacks import create_attack
from defenses import create_defense
from defenses.instahide import flip_signs
from defenses.mixup import coefficient_moments, mixing_coefficients, unmix, unmix_rounds
from dgp.types import PublicKnowledge
from jobs.config import validate_config
from jobs.plan import ConfigError

K = 10


def _mixes(rounds: int, k: int = 4, seed: int = 0):
    """``rounds`` MixUp encodings of one image (class 0) with fresh partners of classes 1..9
    spread about their class means, and the image itself."""
    generator = torch.Generator().manual_seed(seed)
    means = torch.randn(K, 1, 8, 8, generator=generator)
    user = means[0] + torch.randn(1, 8, 8, generator=generator)
    weights = mixing_coefficients(rounds, k, 0.65, 0.0, generator)
    mixed, targets = [], []
    for r in range(rounds):
        classes = torch.randint(1, K, (k - 1,), generator=generator)
        partners = means[classes] + torch.randn(k - 1, 1, 8, 8, generator=generator)
        mixed.append(weights[r, 0] * user + (weights[r, 1:].view(-1, 1, 1, 1) * partners).sum(0))
        target = torch.zeros(K)
        target[0] = weights[r, 0]
        target.index_add_(0, classes, weights[r, 1:])
        targets.append(target)
    return (torch.stack(mixed).unsqueeze(1), torch.stack(targets).unsqueeze(1), means,
            user.unsqueeze(0))


def _public(means: torch.Tensor) -> PublicKnowledge:
    return PublicKnowledge(means, means.mean(0, keepdim=True), torch.zeros(1, 1, 1, 1),
                           lambda x: x, lambda x: x)


def test_one_round_of_unmix_rounds_is_unmix():
    mixed, targets, means, _ = _mixes(1)
    first, energy = coefficient_moments(4, 0.65, 0.0)
    torch.testing.assert_close(unmix_rounds(mixed, targets, means, first, energy),
                               unmix(mixed[0], targets[0], means, first, energy))


@pytest.mark.parametrize("defense", ["mixup", "instahide"])
def test_more_rounds_give_a_closer_estimate_of_the_users_image(defense):
    """Averaged over draws, 16 rounds' joint estimate is nearer the user's image than one
    round's, for MixUp and for InstaHide's sign flips on top."""
    impl = create_defense(defense, 4, {"flip_center": "mean"} if defense == "instahide" else {})
    errors = {1: [], 16: []}
    for seed in range(8):
        mixed, targets, means, user = _mixes(16, seed=seed)
        if defense == "instahide":
            mixed = flip_signs(mixed, torch.Generator().manual_seed(seed), 0.0)
        for rounds in errors:
            estimate = impl.estimate_private_rounds(mixed[:rounds], targets[:rounds],
                                                    _public(means))
            errors[rounds].append(float((estimate - user).pow(2).mean()))
    one, many = (sum(e) / len(e) for e in errors.values())
    assert many < one / 2, errors


def test_the_default_combination_is_the_mean_of_the_rounds_estimates():
    images = torch.randn(3, 2, 1, 4, 4)
    defense = create_defense("topk", 0.5)
    public = _public(torch.zeros(K, 1, 4, 4))
    torch.testing.assert_close(
        defense.estimate_private_rounds(images, torch.zeros(3, 2, K), public), images.mean(0))


def test_the_privacy_job_hands_the_attack_fresh_rounds_of_the_same_images(monkeypatch):
    from attacks.adaptive import AdaptiveImprovedDeepLeakage
    from attacks.multi_round import MultiRoundDecode
    from jobs import privacy

    seen = {}

    def spy(cls):
        original = cls.reconstruct

        def reconstruct(self, target, generator=None):
            seen[cls.name] = target
            return original(self, target, generator)
        monkeypatch.setattr(cls, "reconstruct", reconstruct)

    spy(MultiRoundDecode)
    spy(AdaptiveImprovedDeepLeakage)
    digits = {"name": "digits", "model": "lenet", "image_size": 16}
    record, _ = privacy.run(digits, "mixup", 4, {}, "multi_round",
                            {"rounds": 3, "iterations": 2}, 0, 1, 1, device="cpu")
    privacy.run(digits, "mixup", 4, {}, "idlg_adaptive", {"iterations": 2}, 0, 1, 1,
                device="cpu")
    target = seen["multi_round"]
    assert len(target.later_rounds) == 2 and not seen["idlg_adaptive"].later_rounds
    updates = [target.shared, *target.later_rounds]
    # Fresh partners and coefficients every round.
    for a, b in zip(updates, updates[1:], strict=False):
        assert not torch.allclose(a.tensors[-1], b.tensors[-1])
    # The first round is the update every other attack of the setting sees.
    single = seen["idlg_adaptive"].shared.tensors
    assert all(torch.equal(a, b) for a, b in zip(target.shared.tensors, single, strict=True))
    assert record["rows"][0]["status"] == "ok"
    assert "several rounds" in record["job"]["knowledge"]


def test_multi_round_runs_only_behind_data_defenses():
    assert create_attack("multi_round").observed_rounds == 8
    config = {"datasets": [{"name": "digits", "model": "lenet", "image_size": 16}],
              "defenses": [{"name": "dgp", "ratios": [0.8]}, {"name": "mixup", "ratios": [4]}],
              "attacks": [{"name": "multi_round"}]}
    with pytest.raises(ConfigError, match=r"protocols\[0\]: attack 'multi_round' combines "
                                          r"rounds .* 'dgp' is a pruning defense"):
        validate_config(config)
    config["privacy"] = {"protocols": [{"defenses": ["mixup"]}]}
    validate_config(config)
