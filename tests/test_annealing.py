"""Annealed user views (soft band masks, then hard ones): the returned iterate is the best
under the hard objective, whichever phase it came from, and the L-BFGS anneal moves once
per step (issue 25, point 5)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import torch

from attacks import AttackTarget, create_attack
from attacks.best_iterate import BestIterate
from attacks.objectives import candidate_update
from attacks.optimization import optimize_images
from defenses import create_defense
from dgp.attack import UserView
from dgp.models import build_model
from dgp.optim import Adam, MultiStepLR
from dgp.protocol import Protocol
from dgp.types import summed
from dgp.updates import user_update


class TwoPhases(UserView):
    """A toy annealed view: soft for the first ``soft_steps`` steps, hard after."""

    def __init__(self, soft_steps: int) -> None:
        self.soft_steps, self.soft = soft_steps, True

    def begin_step(self, step: int) -> None:
        self.soft = step <= self.soft_steps

    @property
    def phase(self) -> str:
        return "soft" if self.soft else "hard"

    @contextmanager
    def final(self) -> Iterator[None]:
        soft, self.soft = self.soft, False
        yield
        self.soft = soft


def _toy_objective(view: TwoPhases):
    """Soft: far below any hard value, minimised at 1; hard: minimised at 3."""
    def objective(x: torch.Tensor) -> torch.Tensor:
        if view.soft:
            return (x - 1).pow(2).sum() - 100
        return (x - 3).pow(2).sum()
    return objective


def test_an_annealed_run_returns_the_best_iterate_under_the_hard_objective() -> None:
    view = TwoPhases(soft_steps=10)
    objective = _toy_objective(view)
    images = torch.zeros(1, 1, 1, 1, requires_grad=True)
    optimizer = Adam([images], lr=0.3)
    box = (torch.full((1, 1, 1, 1), -9.0), torch.full((1, 1, 1, 1), 9.0))
    result = optimize_images(images, torch.zeros(1), objective, optimizer,
                             MultiStepLR(optimizer, [], 1.0), 20, box, "toy", view=view)
    assert result.phase == "hard"
    hard = float((result.images - 3).pow(2).sum())
    assert result.loss == pytest.approx(hard) and hard < 1.0  # not a soft value near -100
    with view.final():
        scores = {f: float(objective(x)) for f, x in sorted(result.checkpoints.items())}
    assert list(scores.values()) == sorted(scores.values(), reverse=True)
    assert result.loss <= min(scores.values())


def test_a_soft_iterate_best_under_the_hard_objective_is_returned_and_called_soft() -> None:
    view = TwoPhases(soft_steps=2)
    objective = _toy_objective(view)
    best = BestIterate(view, lambda x: float(objective(x)), torch.zeros(1))
    for step, x in enumerate((torch.tensor([2.9]), torch.tensor([1.0]), torch.tensor([0.0]),
                              torch.tensor([5.0])), start=1):
        view.begin_step(step)
        best.offer(float(objective(x)), lambda x=x: x)
    final = best.settle()
    # soft values: 2.9 -> -96.39, 1.0 -> -100 (the soft best, hard 4); hard: 9, 4 (tie)
    assert final.phase == "soft" and float(final.state) == 1.0 and final.loss == 4.0
    view.begin_step(5)
    best.offer(float(objective(torch.tensor([3.5]))), lambda: torch.tensor([3.5]))
    assert best.settle().phase == "hard" and best.settle().loss == 0.25


def _dgp_sum_target() -> tuple[AttackTarget, torch.Tensor]:
    """The sum of 2 users' DGP 0.8 gradients (one 16 x 16 digit each), labels given."""
    model = build_model("lenet", 1, 10, 16, 0).eval()
    generator = torch.Generator().manual_seed(0)
    images = torch.randn(2, 1, 16, 16, generator=generator)
    labels = torch.tensor([3, 7])
    defense = create_defense("dgp", 0.8)
    shared = summed([defense.apply(user_update(model, images[u:u + 1], labels[u:u + 1],
                                               Protocol())) for u in range(2)])
    box = (torch.full((1, 1, 1, 1), -9.0), torch.full((1, 1, 1, 1), 9.0))
    target = AttackTarget(model, shared, 1, (1, 16, 16), 10, box, defense=defense,
                          oracle_labels=labels, protocol=Protocol(users=2))
    return target, labels


def test_the_lbfgs_anneal_moves_once_per_step_and_returns_a_hard_scored_iterate() -> None:
    """4 L-BFGS steps of up to 5 evaluations: temperatures 1 and 0.1 on the first two steps
    (one temperature per step however many evaluations), hard masks on the last two; the
    returned loss is the hard-mask objective of the returned images."""
    target, labels = _dgp_sum_target()
    seen: list[float] = []
    aggregate_view = target.defense.aggregate_view

    def recording(update, shared, temperature):
        seen.append(temperature)
        return aggregate_view(update, shared, temperature)

    target.defense.aggregate_view = recording
    attack = create_attack("idlg_adaptive", {"iterations": 4, "max_evaluations": 5,
                                              "label_rule": "oracle"})
    result = attack.reconstruct(target, torch.Generator().manual_seed(1))
    soft = [t for t in seen if t > 0]
    assert sorted(set(soft), reverse=True) == pytest.approx([1.0, 0.1])
    assert len(seen) > 2 * 2 * 2 and seen[-1] == 0.0  # several evaluations per step
    assert result.phase in ("soft", "hard")
    view = attack.user_view(target, steps=4)
    with view.final():
        observed = list(target.shared.tensors)
        hard = attack.matching_loss(candidate_update(target, result.images, labels, view),
                                    observed, target)
    assert result.loss == pytest.approx(float(hard.detach()), rel=1e-5)


def test_a_run_with_hard_masks_throughout_has_no_phase() -> None:
    target, _ = _dgp_sum_target()
    attack = create_attack("idlg_adaptive", {"iterations": 2, "max_evaluations": 2,
                                              "label_rule": "oracle", "mask_temperature": 0})
    assert attack.reconstruct(target, torch.Generator().manual_seed(1)).phase == ""


def test_the_privacy_job_records_each_runs_phase() -> None:
    """An annealed attack's rows (soft band masks anneal under a sum of users) name the phase
    its images come from; others leave it empty."""
    from jobs.privacy import run

    digits = {"name": "digits", "model": "lenet", "image_size": 16}
    for attack, expected in (("idlg_adaptive", {"soft", "hard"}), ("ig", {""})):
        record, _ = run(digits, "dgp", 0.8, {}, attack, {"iterations": 2}, seed=0,
                        num_images=3, batch_size=1, protocol={"users": 3})
        assert {row["phase"] for row in record["rows"]} <= expected, attack
