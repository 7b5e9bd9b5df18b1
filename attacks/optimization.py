"""The first-order optimisation loop shared by the image-optimising attacks.

Attacks supply the objective (matching plus priors); this loop owns stepping, the valid box,
divergence detection and keeping the best iterate.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from tqdm import tqdm

from attacks.base import checkpoint_steps
from dgp.lazy import torch
from dgp.optim import Adam, LambdaLR, MultiStepLR


def optimize_images(images: torch.Tensor, objective: Callable[[torch.Tensor], torch.Tensor],
                    optimizer: Adam, scheduler: MultiStepLR | LambdaLR, iterations: int,
                    box: tuple[torch.Tensor, torch.Tensor], desc: str, signed: bool = False,
                    gradient_noise: Callable[[torch.Tensor], None] | None = None,
                    ) -> tuple[torch.Tensor, float, str, int, dict[float, torch.Tensor]]:
    """Minimise ``objective(images)`` over ``images`` (a leaf tensor the optimiser owns).

    ``signed`` steps on the sign of the gradient (Inverting Gradients); ``gradient_noise``
    may change the image gradient in place before that (Langevin noise, as in breaching).
    Images are clamped to ``box`` after every step. Returns the best images, their
    objective, "ok" or "diverged" (a non-finite objective ends the run), the steps taken and
    the best images after each budget fraction (``checkpoint_steps``).
    """
    lower, upper = box
    best_loss, best_images, status, step = math.inf, images.detach().clone(), "ok", 0
    marks, checkpoints = checkpoint_steps(iterations), {}
    for step in tqdm(range(1, iterations + 1), desc=desc, leave=False, disable=None):
        value = objective(images)
        loss = float(value.detach())
        if not math.isfinite(loss):
            status = "diverged"
            break
        if loss < best_loss:
            best_loss, best_images = loss, images.detach().clone()
        if step in marks:
            checkpoints[marks[step]] = best_images
        optimizer.zero_grad()
        images.grad, = torch.autograd.grad(value, images)
        if gradient_noise is not None:
            gradient_noise(images.grad)
        if signed:
            images.grad.sign_()
        optimizer.step()
        scheduler.step()
        with torch.no_grad():
            images.copy_(torch.maximum(torch.minimum(images, upper), lower))
    return best_images, best_loss, status, step, checkpoints
