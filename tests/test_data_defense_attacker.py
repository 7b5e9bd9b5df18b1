"""Defense-aware attackers model the data-transform defenses (MixUp, InstaHide, ATS): from a
reconstruction of what was shared they estimate the user's own image, from the protocol and
public data only."""

from __future__ import annotations

import pytest
import torch

from attacks import create_attack
from attacks.adaptive import shared_soft_targets
from defenses import create_defense
from defenses.ats import apply_operation, policy_shifts, unshift_estimate
from defenses.instahide import flip_signs, unflip_estimate
from defenses.mixup import coefficient_moments, unmix
from dgp.attack import AttackTarget
from dgp.gradients import parameter_gradients
from dgp.labels import soft_targets
from dgp.models import build_model
from dgp.protocol import Protocol
from dgp.types import PublicKnowledge
from dgp.updates import user_update

K = 10
BOX = (torch.full((1, 1, 1, 1), -3.0), torch.full((1, 1, 1, 1), 3.0))


def _rand(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed))


def _public(class_means: torch.Tensor) -> PublicKnowledge:
    return PublicKnowledge(class_means, class_means.mean(0, keepdim=True),
                           torch.zeros(1, 1, 1, 1), lambda x: x, lambda x: x)


def test_soft_labels_read_from_the_bias_gradient_are_exact_for_the_true_image():
    model = build_model("lenet", 1, K, 8, seed=0).eval()
    image = _rand(1, 1, 8, 8)
    mixed = torch.zeros(1, K)
    mixed[0, [2, 5, 7]] = torch.tensor([0.5, 0.3, 0.2])
    gradients = parameter_gradients(model, image, mixed)
    found = soft_targets(model, image, gradients, torch.tensor([2]), K)
    torch.testing.assert_close(found, mixed, atol=1e-5, rtol=0)


def test_a_batch_keeps_one_hot_labels():
    model = build_model("lenet", 1, K, 8, seed=0).eval()
    images = _rand(2, 1, 8, 8)
    gradients = parameter_gradients(model, images, torch.tensor([1, 4]))
    found = soft_targets(model, images, gradients, torch.tensor([1, 4]), K)
    assert found.argmax(-1).tolist() == [1, 4] and found.max() == 1


def test_unmixing_recovers_the_user_image_when_partners_are_their_class_means():
    means = _rand(K, 1, 4, 4, seed=1)
    user = _rand(1, 1, 4, 4, seed=2)
    weights = torch.tensor([0.5, 0.3, 0.2])
    mixed = weights[0] * user + weights[1] * means[3] + weights[2] * means[8]
    targets = torch.zeros(1, K)
    targets[0, [6, 3, 8]] = weights
    # No spread of the partners about their class means: exact unmixing.
    torch.testing.assert_close(unmix(mixed, targets, means, 0.5, 0.0), user)
    # With spread, what the class means do not explain is shared: shrunk toward the mean.
    shrunk = unmix(mixed, targets, means, 0.5, 0.2)
    assert (shrunk - means[6]).norm() < (user - means[6]).norm()
    assert (shrunk - user).norm() < (means[6] - user).norm()


def test_the_protocols_expected_first_coefficient_respects_the_truncation():
    first, energy = coefficient_moments(4, 0.65, 0.0)
    assert 0.25 < first < 3 / (4 + 2) and 0 < energy < 1 - first


def test_instahide_flips_are_undone_where_the_public_guess_has_the_right_side():
    mixture = _rand(1, 1, 4, 4, seed=3) * 2 - 1
    flipped = flip_signs(mixture, torch.Generator().manual_seed(4), 0.0)
    targets = torch.full((1, K), 1 / K)
    means = mixture.expand(K, -1, -1, -1)  # the expected mixture is on the true side
    torch.testing.assert_close(unflip_estimate(flipped, targets, means, 0.0), mixture)
    wrong = unflip_estimate(flipped, targets, -means, 0.0)
    torch.testing.assert_close(wrong, -mixture)


def test_ats_shifts_are_undone_by_the_closest_to_the_class_mean():
    policy = "3-1-7+43-18-18"
    assert (7, 2) in policy_shifts(policy, 16, 16, 1.0)
    assert (0, 0) in policy_shifts(policy, 16, 16, 0.5)
    mean = _rand(1, 16, 16, seed=5)
    moved = apply_operation(mean, "translateX", 9, 1.0)  # 7 pixels right, black fill
    moved = apply_operation(moved, "translateY", 2, -1.0)  # 2 pixels up
    estimate = unshift_estimate(moved.unsqueeze(0), mean.unsqueeze(0),
                                policy_shifts(policy, 16, 16, 1.0))
    torch.testing.assert_close(estimate[0], mean)


def test_the_default_estimate_is_the_reconstruction_itself():
    images = _rand(2, 1, 4, 4)
    for name, ratio in (("none", 0), ("topk", 0.5), ("mixup", 1)):
        defense = create_defense(name, ratio)
        assert defense.estimate_private(images, torch.eye(K)[:2], _public(images)) is images


def test_public_knowledge_gives_absent_classes_the_overall_mean():
    images = _rand(4, 1, 2, 2)
    public = PublicKnowledge.from_samples(images, torch.tensor([0, 0, 1, 1]), 3,
                                          torch.zeros(1, 1, 1, 1), lambda x: x, lambda x: x)
    torch.testing.assert_close(public.class_means[0], images[:2].mean(0))
    torch.testing.assert_close(public.class_means[2], images.mean(0))


@pytest.fixture(scope="module")
def mixup_target() -> AttackTarget:
    model = build_model("lenet", 1, K, 8, seed=0).eval()
    defense = create_defense("mixup", 3)
    images = _rand(3, 1, 8, 8, seed=6) * 2 - 1
    mixed, targets = defense.transform_batch(images[:1], torch.tensor([1]), K,
                                             torch.Generator().manual_seed(7),
                                             lambda n: (images[1:1 + n], torch.tensor([4, 8])))
    shared = defense.apply(parameter_gradients(model, mixed, targets))
    return AttackTarget(model, shared, 1, (1, 8, 8), K, BOX, defense,
                        _public(_rand(K, 1, 8, 8, seed=8) * 2 - 1))


def test_an_adaptive_attack_on_mixup_returns_the_unmixed_estimate(mixup_target):
    params = {"iterations": 4}
    passive = create_attack("dlg", params).reconstruct(mixup_target,
                                                       torch.Generator().manual_seed(9))
    adaptive = create_attack("dlg_adaptive", params).reconstruct(
        mixup_target, torch.Generator().manual_seed(9))
    targets = soft_targets(mixup_target.model, passive.images, mixup_target.shared.tensors,
                           passive.labels, K)
    expected = mixup_target.defense.estimate_private(passive.images, targets,
                                                     mixup_target.public).clamp(-3, 3)
    assert not torch.allclose(adaptive.images, passive.images)
    torch.testing.assert_close(adaptive.images, expected)
    assert set(adaptive.checkpoints) == set(passive.checkpoints)
    for fraction, images in adaptive.checkpoints.items():
        assert not torch.allclose(images, passive.checkpoints[fraction])


def test_without_public_knowledge_the_adaptive_attack_returns_what_it_reconstructed(
        mixup_target):
    target = AttackTarget(*[getattr(mixup_target, f) for f in (
        "model", "shared", "batch_size", "image_shape", "num_classes", "box", "defense")])
    params = {"iterations": 4}
    passive = create_attack("dlg", params).reconstruct(target, torch.Generator().manual_seed(9))
    adaptive = create_attack("dlg_adaptive", params).reconstruct(
        target, torch.Generator().manual_seed(9))
    torch.testing.assert_close(adaptive.images, passive.images)


def test_soft_targets_read_from_a_one_step_fedavg_update_are_the_fedsgd_ones():
    """One local step at lr 0.1 changes the weights by 0.1 x the FedSGD gradient; read as
    it is, its bias entry says nothing of the targets (the softmax dwarfs it), so the
    estimate scales the update back to one user's gradient first, as the label rules do."""
    model = build_model("lenet", 1, K, 8, seed=0).eval()
    image = _rand(1, 1, 8, 8)
    mixed = torch.zeros(1, K)
    mixed[0, [2, 5, 7]] = torch.tensor([0.5, 0.3, 0.2])
    defense = create_defense("mixup", 3)
    found = {}
    for protocol in (Protocol(), Protocol("fedavg", 1, 0, 0.1)):
        shared = defense.apply(user_update(model, image, mixed, protocol))
        target = AttackTarget(model, shared, 1, (1, 8, 8), K, BOX, defense,
                              _public(_rand(K, 1, 8, 8, seed=8)), protocol=protocol)
        found[protocol.algorithm] = shared_soft_targets(target, image, torch.tensor([2]))
    torch.testing.assert_close(found["fedavg"], found["fedsgd"], atol=1e-5, rtol=0)
    torch.testing.assert_close(found["fedsgd"], mixed, atol=1e-5, rtol=0)
    unscaled = soft_targets(model, image, list(shared.tensors), torch.tensor([2]), K)
    assert (unscaled - mixed).abs().max() > 0.05
