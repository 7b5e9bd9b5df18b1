"""GradInversion / See Through Gradients (Yin et al., 2021), as configured in the DGP code.

The defaults are the DGP authors' ``seethroughgradients.yaml`` (breaching's attack config):
Euclidean gradient matching ``0.5 x scale x sum (g - g')^2`` with ``scale`` 1e-4; the
BatchNorm-statistics prior (DeepInversion: per BatchNorm layer, the L2 distances of the
candidate batch's mean and variance from the running statistics the server sent with the
model; the first layer's weighted x10), weight 0.01; total variation, 1e-4; an L2 prior
``0.5 x mean(x^2)``, 1e-6. Adam, lr 0.1, on the *sign* of the image gradient; linear
warm-up over 50 steps, then cosine decay to 0; Langevin noise ``0.02 x lr x N(0, 1)`` added
to the image gradient before its sign is taken; images kept in the valid box; 20,000
iterations; labels by Yin's row-minimum rule; the best iterate by objective is returned.

Where ours differs: TV is the mean absolute difference of neighbouring pixels (breaching's
convolution also counts the zero-padded border); the step is scheduled by our warm-up +
cosine factor rather than breaching's GradualWarmupScheduler (the same shape).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from attacks.gradient_matching import GradientMatching
from attacks.objectives import candidate_update, euclidean_distance, total_variation
from attacks.optimization import optimize_images
from dgp.attack import AttackTarget, Reconstruction, label_rule
from dgp.lazy import torch
from dgp.optim import Adam, LambdaLR
from dgp.params import Param

if TYPE_CHECKING:
    from torch import nn


class BatchNormStatistics:
    """Records, per BatchNorm layer, how far the candidate batch's statistics are from the
    layer's running statistics (forward hooks; remove with ``close``)."""

    def __init__(self, model: nn.Module, first_multiplier: float = 1.0) -> None:
        self.losses: list[torch.Tensor] = []
        self.first_multiplier = first_multiplier
        self.handles = [m.register_forward_hook(self._hook) for m in model.modules()
                        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]

    def _hook(self, module, inputs, output) -> None:
        x = inputs[0]
        dims = [0] + list(range(2, x.ndim))
        mean, var = x.mean(dims), x.var(dims, unbiased=False)
        self.losses.append(torch.norm(mean - module.running_mean, 2)
                           + torch.norm(var - module.running_var, 2))

    def pop(self) -> torch.Tensor:
        """The prior of the last forward pass (first layer weighted) and reset."""
        losses, self.losses = self.losses, []
        if not losses:
            return torch.zeros(())
        return self.first_multiplier * losses[0] + sum(losses[1:])

    def close(self) -> None:
        for handle in self.handles:
            handle.remove()


def warmup_cosine(step: int, total: int, warmup: int) -> float:
    """Learning-rate factor: linear warm-up, then cosine decay to zero."""
    if step < warmup:
        return (step + 1) / warmup
    return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))


class GradInversion(GradientMatching):
    name = "gradinversion"
    needs_batchnorm = True
    example_params = {"iterations": 3, "warmup": 1}
    parameters = {
        "iterations": Param(20_000, int, low=1, doc="Adam steps"),
        "lr": Param(0.1, float, low=0, low_open=True, doc="Adam's peak lr"),
        "warmup": Param(50, int, low=0, doc="steps of linear lr warm-up before the cosine"),
        "scale": Param(1e-4, float, low=0, low_open=True, doc="Euclidean matching scale"),
        "bn_weight": Param(0.01, float, low=0, doc="weight of the BatchNorm-statistics prior"),
        "first_bn_multiplier": Param(10.0, float, low=0,
                                     doc="extra weight of the first BatchNorm layer's term"),
        "tv_weight": Param(1e-4, float, low=0, doc="weight of the total-variation prior"),
        "l2_weight": Param(1e-6, float, low=0, doc="weight of the L2 image prior"),
        "langevin": Param(0.02, float, low=0, doc="Langevin noise: std langevin x lr"),
        "signed": Param(True, bool, doc="step on the sign of the image gradient"),
        "label_rule": label_rule("yin"),
    }

    def matching_loss(self, candidate: list[torch.Tensor], observed: list[torch.Tensor],
                      target: AttackTarget) -> torch.Tensor:
        """Passive matching: breaching's scaled Euclidean distance over the whole gradient."""
        return 0.5 * self.params["scale"] * euclidean_distance(candidate, observed)

    def restart(self, target: AttackTarget, observed: list[torch.Tensor],
                generator: torch.Generator | None, index: int) -> Reconstruction:
        model, p = target.model, self.params
        device = observed[0].device
        statistics = BatchNormStatistics(model, p["first_bn_multiplier"])
        if not statistics.handles:
            raise ValueError("gradinversion needs a model with BatchNorm layers")
        labels = self.recovered_labels(target, observed).to(device)
        lower, upper = (b.to(device) for b in target.box)
        shape = (target.num_images, *target.image_shape)
        images = self.random_start(target, generator, device)
        n = p["iterations"]
        optimizer = Adam([images], lr=p["lr"])
        scheduler = LambdaLR(optimizer, lambda step: warmup_cosine(step, n, p["warmup"]))
        view = self.user_view(target, steps=n)

        def objective(candidate: torch.Tensor) -> torch.Tensor:
            statistics.pop()
            targets = self.candidate_targets(target, candidate, labels)
            matching = self.matching_loss(candidate_update(target, candidate, targets, view),
                                          observed, target)
            return (matching + p["bn_weight"] * statistics.pop()
                    + p["tv_weight"] * total_variation(candidate)
                    + p["l2_weight"] * 0.5 * candidate.pow(2).mean())

        def langevin(gradient: torch.Tensor) -> None:
            scale = p["langevin"] * optimizer.lr
            gradient.add_(scale * torch.randn(shape, generator=generator).to(device))

        try:
            return optimize_images(
                images, labels, objective, optimizer, scheduler, n, (lower, upper),
                desc=self.name, signed=p["signed"],
                gradient_noise=langevin if p["langevin"] else None, view=view)
        finally:
            statistics.close()
