"""GradInversion / See Through Gradients (Yin et al., 2021).

Euclidean gradient matching plus image priors: the BatchNorm-statistics prior (the batch
mean and variance of every BatchNorm layer's input should match the layer's running
statistics, which the server sends with the model), total variation and an L2 norm. Labels
come from the classifier's gradient (the batch version of iDLG). Adam with a linear warm-up
and cosine decay, optional Langevin noise (a decaying random perturbation after each step),
images kept in the valid box; the best iterate by objective is returned.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from attacks.base import Attack, AttackTarget, Reconstruction
from attacks.labels import infer_labels
from attacks.objectives import candidate_gradients, euclidean_distance, total_variation
from attacks.optimization import optimize_images


class BatchNormStatistics:
    """Records, per BatchNorm layer, how far the candidate batch's statistics are from the
    layer's running statistics (forward hooks; remove with ``close``)."""

    def __init__(self, model: nn.Module) -> None:
        self.losses: list[torch.Tensor] = []
        self.handles = [m.register_forward_hook(self._hook) for m in model.modules()
                        if isinstance(m, nn.modules.batchnorm._BatchNorm)]

    def _hook(self, module, inputs, output) -> None:
        x = inputs[0]
        dims = [0] + list(range(2, x.ndim))
        mean, var = x.mean(dims), x.var(dims, unbiased=False)
        self.losses.append(torch.norm(mean - module.running_mean, 2)
                           + torch.norm(var - module.running_var, 2))

    def pop(self) -> torch.Tensor:
        total = sum(self.losses)
        self.losses = []
        return total

    def close(self) -> None:
        for handle in self.handles:
            handle.remove()


def warmup_cosine(step: int, total: int, warmup: int) -> float:
    """Learning-rate factor: linear warm-up, then cosine decay to zero."""
    if step < warmup:
        return (step + 1) / warmup
    return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))


class GradInversion(Attack):
    name = "gradinversion"
    needs_batchnorm = True
    defaults = {"iterations": 4000, "lr": 0.1, "warmup": 50, "bn_weight": 0.01,
                "tv_weight": 1e-4, "l2_weight": 1e-6, "langevin": 0.0}

    def reconstruct(self, target: AttackTarget,
                    generator: torch.Generator | None = None) -> Reconstruction:
        model = target.model
        device = next(model.parameters()).device
        statistics = BatchNormStatistics(model)
        if not statistics.handles:
            raise ValueError("gradinversion needs a model with BatchNorm layers")
        observed = [t.to(device) for t in target.shared.tensors]
        labels = infer_labels(observed, target.batch_size, target.num_classes).to(device)
        lower, upper = (b.to(device) for b in target.box)
        shape = (target.batch_size, *target.image_shape)
        images = torch.randn(shape, generator=generator).to(device).requires_grad_(True)
        n, p = self.params["iterations"], self.params
        optimizer = torch.optim.Adam([images], lr=p["lr"])
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: warmup_cosine(step, n, p["warmup"]))

        def objective(candidate: torch.Tensor) -> torch.Tensor:
            statistics.pop()
            matching = euclidean_distance(candidate_gradients(model, candidate, labels),
                                          observed)
            return (matching + p["bn_weight"] * statistics.pop()
                    + p["tv_weight"] * total_variation(candidate)
                    + p["l2_weight"] * candidate.pow(2).sum())

        def langevin(candidate: torch.Tensor) -> None:
            scale = p["langevin"] * scheduler.get_last_lr()[0]
            candidate.add_(scale * torch.randn(shape, generator=generator).to(device))

        try:
            best_images, best_loss, status, step = optimize_images(
                images, objective, optimizer, scheduler, n, (lower, upper), desc=self.name,
                perturb=langevin if p["langevin"] else None)
        finally:
            statistics.close()
        return Reconstruction(best_images, labels, status, best_loss, step)
