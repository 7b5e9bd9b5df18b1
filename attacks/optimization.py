"""The first-order optimisation loop shared by the image-optimising attacks.

Attacks supply the objective (matching plus priors); this loop owns stepping, the valid box,
divergence detection and keeping the best iterate.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from tqdm import tqdm


def optimize_images(images: torch.Tensor, objective: Callable[[torch.Tensor], torch.Tensor],
                    optimizer: torch.optim.Optimizer, scheduler, iterations: int,
                    box: tuple[torch.Tensor, torch.Tensor], desc: str, signed: bool = False,
                    perturb: Callable[[torch.Tensor], None] | None = None,
                    ) -> tuple[torch.Tensor, float, str, int]:
    """Minimise ``objective(images)`` over ``images`` (a leaf tensor the optimiser owns).

    ``signed`` steps on the sign of the gradient (Inverting Gradients); ``perturb`` may
    change the images in place after each step (e.g. Langevin noise). Images are clamped to
    ``box`` after every step. Returns the best images, their objective, "ok" or "diverged"
    (a non-finite objective ends the run), and the steps taken.
    """
    lower, upper = box
    best_loss, best_images, status, step = math.inf, images.detach().clone(), "ok", 0
    for step in tqdm(range(1, iterations + 1), desc=desc, leave=False, disable=None):
        value = objective(images)
        loss = float(value.detach())
        if not math.isfinite(loss):
            status = "diverged"
            break
        if loss < best_loss:
            best_loss, best_images = loss, images.detach().clone()
        optimizer.zero_grad()
        images.grad, = torch.autograd.grad(value, images)
        if signed:
            images.grad.sign_()
        optimizer.step()
        scheduler.step()
        with torch.no_grad():
            if perturb is not None:
                perturb(images)
            images.copy_(torch.maximum(torch.minimum(images, upper), lower))
    return best_images, best_loss, status, step
