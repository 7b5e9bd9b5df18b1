"""Problems solved together give what each gives alone: the batched gradient-matching path
(``attacks.batched_updates``, ``GradientMatching.solve``) against one problem at a time,
for every protocol and view it serves."""

from __future__ import annotations

import pytest
import torch

from attacks import create_attack
from attacks.batched_updates import batchable
from defenses import create_defense
from dgp.attack import AttackTarget
from dgp.metrics import image_metrics
from dgp.models import build_model
from dgp.protocol import Protocol
from dgp.types import summed
from dgp.updates import user_update

BOX = (torch.full((1, 1, 1, 1), -3.0), torch.full((1, 1, 1, 1), 3.0))


def targets(defense: str, protocol: Protocol, count: int, model: str = "lenet",
            ratio: float = 0.8) -> tuple[list[AttackTarget], list[torch.Tensor]]:
    """``count`` targets, each a fresh model draw and images of its own (the privacy job's
    cases), and their images."""
    made, originals = [], []
    channels, size = (3, 16) if model == "convnet" else (1, 16)
    for case in range(count):
        torch.manual_seed(case)
        impl = create_defense(defense, 0 if defense == "none" else ratio)
        net = build_model(model, channels, 10, size, case, impl.wrap_model).eval()
        images = torch.rand(protocol.users, channels, size, size) * 2 - 1
        labels = torch.arange(protocol.users) + case
        updates = [user_update(net, images[u:u + 1], labels[u:u + 1], protocol)
                   for u in range(protocol.users)]
        shared = summed(impl.share_round(updates, torch.Generator().manual_seed(case)))
        box = tuple(b.expand(1, channels, 1, 1) for b in BOX)
        made.append(AttackTarget(net, shared, 1, (channels, size, size), 10, box,
                                 defense=impl, protocol=protocol))
        originals.append(images)
    return made, originals


def alone_and_together(attack_name: str, made: list[AttackTarget], **params):
    attack = create_attack(attack_name, params)
    alone = [attack.reconstruct(t, torch.Generator().manual_seed(7 + i))
             for i, t in enumerate(made)]
    together = attack.reconstruct_all(
        made, [torch.Generator().manual_seed(7 + i) for i in range(len(made))])
    return alone, together


CASES = {
    "passive FedSGD": ("ig", "none", Protocol(), "lenet"),
    "defense-aware on DGP": ("ig_adaptive", "dgp", Protocol(), "lenet"),
    "defense-aware on a 2-user sum (annealed bands)": ("ig_adaptive", "dgp",
                                                       Protocol(users=2), "lenet"),
    "FedAvg, 2 local steps": ("ig", "none", Protocol(algorithm="fedavg", local_steps=2),
                              "lenet"),
    "BatchNorm in train mode": ("ig", "none", Protocol(batchnorm="train"), "convnet"),
    "noise likelihood": ("ig_adaptive", "dp_gaussian", Protocol(), "lenet"),
}


@pytest.mark.parametrize("case", CASES)
def test_batched_iterates_equal_one_by_one(case):
    attack, defense, protocol, model = CASES[case]
    ratio = 0.01 if defense == "dp_gaussian" else 0.8
    made, _ = targets(defense, protocol, 3, model, ratio)
    assert batchable(made)
    alone, together = alone_and_together(attack, made, iterations=4, restarts=2, lr=0.1)
    for one, batched in zip(alone, together, strict=True):
        torch.testing.assert_close(batched.images, one.images, rtol=1e-4, atol=1e-4)
        assert batched.loss == pytest.approx(one.loss, rel=1e-4, abs=1e-6)
        assert (batched.status, batched.iterations) == (one.status, one.iterations)
        assert batched.checkpoints.keys() == one.checkpoints.keys()


def test_batched_run_scores_the_same_psnr():
    """A run long enough to reconstruct: the same PSNR within 0.1 dB per problem."""
    made, originals = targets("none", Protocol(), 4)
    alone, together = alone_and_together("ig", made, iterations=150, tv_weight=0.0)
    for one, batched, images in zip(alone, together, originals, strict=True):
        psnr = [image_metrics(r.images.detach().clamp(-1, 1) / 2 + 0.5, images / 2 + 0.5,
                              lpips=False)["psnr"][0] for r in (one, batched)]
        assert psnr[0] > 20  # reconstructed, so the comparison means something
        assert abs(psnr[0] - psnr[1]) < 0.1


def test_a_diverging_problem_stops_alone():
    """Noise of std 1e38 overflows one problem's objective: it ends "diverged" at the step
    it would alone, and the others run to the end as they would alone."""
    made, _ = targets("none", Protocol(), 2)
    noisy, _ = targets("dp_gaussian", Protocol(), 1, ratio=1e38)
    mixed = [made[0], noisy[0], made[1]]
    alone, together = alone_and_together("ig", mixed, iterations=5)
    assert [r.status for r in together] == [r.status for r in alone] == ["ok", "diverged", "ok"]
    assert [r.iterations for r in together] == [r.iterations for r in alone]
    torch.testing.assert_close(together[2].images, alone[2].images, rtol=1e-4, atol=1e-4)


def test_penalised_models_and_mixed_protocols_are_solved_one_by_one():
    made, _ = targets("none", Protocol(), 2)
    other, _ = targets("none", Protocol(users=2), 1)
    assert not batchable([made[0], other[0]])
    precode, _ = targets("precode", Protocol(), 2, ratio=0.001)
    assert not batchable(precode)  # its layer draws noise and reports a penalty
    attack = create_attack("ig", {"iterations": 2})
    assert attack.solves_together(made) and not attack.solves_together(precode)
    assert not create_attack("idlg", {}).solves_together(made)  # L-BFGS: one by one
    mixed, _ = targets("mixup", Protocol(), 2, ratio=4)
    assert batchable(mixed)
    adaptive = create_attack("ig_adaptive", {"iterations": 2})
    assert not adaptive.solves_together(mixed)  # soft targets from each candidate's logits
    alone, together = alone_and_together("ig_adaptive", mixed, iterations=2)
    for one, other in zip(alone, together, strict=True):
        assert torch.equal(one.images, other.images)
