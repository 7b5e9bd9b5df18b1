"""DLG, Deep Leakage from Gradients (Zhu et al., 2019), with iDLG's label inference.

L-BFGS on the candidate images, minimising the Euclidean distance between their gradient and
the shared one. ``iterations`` counts L-BFGS steps; each step evaluates the gradient up to
``max_evaluations`` times (torch's default 20), as in the reference code.
"""

from __future__ import annotations

import math

import torch
from tqdm import tqdm

from attacks.base import Attack, AttackTarget, Reconstruction
from attacks.labels import infer_labels
from attacks.objectives import candidate_gradients, euclidean_distance


class DeepLeakage(Attack):
    name = "dlg"
    defaults = {"iterations": 300, "lr": 1.0, "max_evaluations": 20}

    def reconstruct(self, target: AttackTarget,
                    generator: torch.Generator | None = None) -> Reconstruction:
        model = target.model
        device = next(model.parameters()).device
        observed = [t.to(device) for t in target.shared.tensors]
        labels = infer_labels(observed, target.batch_size, target.num_classes).to(device)
        shape = (target.batch_size, *target.image_shape)
        start = torch.randn(shape, generator=generator).to(device)
        images = start.clone().requires_grad_(True)
        optimizer = torch.optim.LBFGS([images], lr=self.params["lr"],
                                      max_iter=self.params["max_evaluations"])

        def closure() -> torch.Tensor:
            optimizer.zero_grad()
            loss = euclidean_distance(candidate_gradients(model, images, labels), observed)
            images.grad, = torch.autograd.grad(loss, images)
            return loss

        best_loss, best_images, status, steps = math.inf, start.clone(), "ok", 0
        for steps in tqdm(range(1, self.params["iterations"] + 1), desc="dlg", leave=False,
                          disable=None):
            loss = float(optimizer.step(closure).detach())
            if not (math.isfinite(loss) and torch.isfinite(images).all()):
                status = "diverged"
                break
            if loss < best_loss:
                best_loss, best_images = loss, images.detach().clone()
        # The loss L-BFGS reports is the one before its step: score the final images too.
        if status == "ok":
            final = float(euclidean_distance(candidate_gradients(model, images, labels),
                                             observed).detach())
            if math.isfinite(final) and final < best_loss:
                best_loss, best_images = final, images.detach().clone()
        return Reconstruction(best_images, labels, status, best_loss, steps)
