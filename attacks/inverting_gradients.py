"""Inverting Gradients (Geiping et al., 2020), as in breaching and the DGP code.

Cosine gradient matching plus a total-variation prior; Adam on the *sign* of the image
gradient; images kept inside the valid pixel box; the learning rate drops x0.1 at 3/8, 5/8
and 7/8 of the run. Each restart starts from fresh noise; the candidate with the lowest
objective over all restarts and iterations is returned. Labels come from the classifier's
gradient (iDLG / Yin et al.), never from the user.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from attacks.batched_updates import BatchedUpdates, batchable
from attacks.gradient_matching import RESTARTS, GradientMatching, Problem
from attacks.objectives import (
    candidate_update,
    cosine_distance,
    cosine_distances,
    total_variation,
    total_variations,
)
from attacks.optimization import optimize_image_batch, optimize_images
from dgp.attack import AttackTarget, Reconstruction, UserView, label_rule
from dgp.lazy import torch
from dgp.optim import Adam, MultiStepLR
from dgp.params import FloatRange, Param


class InvertingGradients(GradientMatching):
    name = "ig"
    example_params = {"iterations": 3}
    parameters = {
        "iterations": Param(24_000, int, low=1, doc="Adam steps per restart"),
        "restarts": RESTARTS,
        "lr": Param(0.1, float, low=0, low_open=True,
                    doc="Adam's initial lr (x0.1 at 3/8, 5/8 and 7/8 of the steps)"),
        "tv_weight": Param(0.2, float, low=0, doc="weight of the total-variation prior"),
        "label_rule": label_rule("auto"),
    }
    # Searched by a tuning job (jobs.tune): the step size by its order of magnitude, the
    # prior's weight linearly from 0 (no prior).
    tuning_space = {"lr": FloatRange(1e-3, 1.0, log=True), "tv_weight": FloatRange(0.0, 1.0)}

    def matching_loss(self, candidate: list[torch.Tensor], observed: list[torch.Tensor],
                      target: AttackTarget) -> torch.Tensor:
        """Passive matching: the whole shared gradient, zeros included."""
        return cosine_distance(candidate, observed)

    def restart(self, target: AttackTarget, observed: list[torch.Tensor],
                generator: torch.Generator | None, index: int) -> Reconstruction:
        device = observed[0].device
        labels = self.recovered_labels(target, observed).to(device)
        images = self.random_start(target, generator, device)
        optimizer, scheduler = self._optimizer(images)
        view = self.user_view(target, steps=self.params["iterations"])
        return optimize_images(images, labels, self._objective(target, observed, labels, view),
                               optimizer, scheduler, self.params["iterations"],
                               _box(target, device), desc=f"{self.name} restart {index}",
                               signed=True, view=view)

    def solves_together(self, targets: Sequence[AttackTarget]) -> bool:
        """Targets of one protocol and architecture (``batchable``) whose candidates are
        simulated under fixed labels (not the soft targets their logits imply)."""
        return len(targets) > 1 and batchable(targets) and not any(
            self.targets_follow_candidate(t) for t in targets)

    def solve(self, problems: list[Problem]) -> list[Reconstruction]:
        """Several problems as one batched problem (``attacks.batched_updates``) where
        ``solves_together``; a single problem, or others, one by one."""
        if not self.solves_together([p.target for p in problems]):
            return super().solve(problems)
        device = problems[0].observed[0].device
        labels = [self.recovered_labels(p.target, p.observed).to(device) for p in problems]
        images = torch.stack([self.random_start(p.target, p.generator, device).detach()
                              for p in problems]).requires_grad_(True)
        views = [self.user_view(p.target, steps=self.params["iterations"]) for p in problems]
        objectives = [self._objective(p.target, p.observed, labels[k], views[k])
                      for k, p in enumerate(problems)]
        objective = self._batched_objective(problems, labels, views)
        optimizer, scheduler = self._optimizer(images)
        lower, upper = (torch.stack(bounds) for bounds in zip(
            *(_box(p.target, device) for p in problems), strict=True))
        return optimize_image_batch(images, labels, objective, objectives, optimizer,
                                    scheduler, self.params["iterations"], (lower, upper),
                                    desc=f"{self.name} x{len(problems)}", signed=True,
                                    views=views)

    def _batched_objective(self, problems: list[Problem], labels: list[torch.Tensor],
                           views: list[UserView | None],
                           ) -> Callable[[torch.Tensor], torch.Tensor]:
        """The K problems' objectives [K] from candidates [K, N, C, H, W]: each problem's
        own matching loss on its slice of the batched updates, or, where every problem is
        matched plainly (the passive cosine, no view), the cosine of all at once."""
        updates = BatchedUpdates([p.target for p in problems], views)
        tv_weight = self.params["tv_weight"]
        if all(self.matches_plainly(p.target) for p in problems) and not any(views):
            observed = [torch.stack(parts) for parts in zip(
                *(p.observed for p in problems), strict=True)]
            stacked = torch.stack(labels)
            return lambda candidates: (
                cosine_distances(updates.summed(candidates, stacked), observed)
                + tv_weight * total_variations(candidates))

        def objective(candidates: torch.Tensor) -> torch.Tensor:
            each = candidates.unbind(0)  # one backward node for all problems' slices
            targets = torch.stack([self.candidate_targets(p.target, each[k], labels[k])
                                   for k, p in enumerate(problems)])
            return torch.stack([
                self.matching_loss(update, p.observed, p.target)
                + tv_weight * total_variation(each[k])
                for k, (p, update) in enumerate(zip(problems, updates.updates(
                    candidates, targets), strict=True))])

        return objective

    def _optimizer(self, images: torch.Tensor) -> tuple[Adam, MultiStepLR]:
        """Adam at ``lr``, x0.1 at 3/8, 5/8 and 7/8 of the steps."""
        n = self.params["iterations"]
        optimizer = Adam([images], lr=self.params["lr"])
        milestones = [int(n * 3 / 8), int(n * 5 / 8), int(n * 7 / 8)]
        return optimizer, MultiStepLR(optimizer, milestones, gamma=0.1)

    def _objective(self, target: AttackTarget, observed: list[torch.Tensor],
                   labels: torch.Tensor, view: UserView | None,
                   ) -> Callable[[torch.Tensor], torch.Tensor]:
        """One problem's objective: matching plus the TV prior."""
        tv_weight = self.params["tv_weight"]

        def objective(candidate: torch.Tensor) -> torch.Tensor:
            matching = self.matching_loss(
                candidate_update(target, candidate,
                                 self.candidate_targets(target, candidate, labels), view),
                observed, target)
            return matching + tv_weight * total_variation(candidate)

        return objective


def _box(target: AttackTarget, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    lower, upper = target.box
    return lower.to(device), upper.to(device)
