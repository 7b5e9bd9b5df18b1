"""Inverting Gradients (Geiping et al., 2020), as in breaching and the DGP code.

Cosine gradient matching plus a total-variation prior; Adam on the *sign* of the image
gradient; images kept inside the valid pixel box; the learning rate drops x0.1 at 3/8, 5/8
and 7/8 of the run. Each restart starts from fresh noise; the candidate with the lowest
objective over all restarts and iterations is returned. Labels come from the classifier's
gradient (iDLG / Yin et al.), never from the user.
"""

from __future__ import annotations

from attacks.gradient_matching import RESTARTS, GradientMatching
from attacks.objectives import candidate_update, cosine_distance, total_variation
from attacks.optimization import optimize_images
from dgp.attack import AttackTarget, Reconstruction, label_rule
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
        lower, upper = (b.to(device) for b in target.box)
        n = self.params["iterations"]
        images = self.random_start(target, generator, device)
        optimizer = Adam([images], lr=self.params["lr"])
        milestones = [int(n * 3 / 8), int(n * 5 / 8), int(n * 7 / 8)]
        scheduler = MultiStepLR(optimizer, milestones, gamma=0.1)
        tv_weight = self.params["tv_weight"]
        view = self.user_view(target, steps=n)

        def objective(candidate: torch.Tensor) -> torch.Tensor:
            matching = self.matching_loss(
                candidate_update(target, candidate,
                                 self.candidate_targets(target, candidate, labels), view),
                observed, target)
            return matching + tv_weight * total_variation(candidate)

        return optimize_images(images, labels, objective, optimizer, scheduler, n,
                               (lower, upper), desc=f"{self.name} restart {index}",
                               signed=True, view=view)
