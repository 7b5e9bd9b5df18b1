"""The first-order optimisation loop shared by the image-optimising attacks.

Attacks supply the objective (matching plus priors); this loop owns stepping, the valid box,
divergence detection and keeping the best iterate (``attacks.best_iterate``: under the
hard objective where the attack's user view anneals).
"""

from __future__ import annotations

import math
from collections.abc import Callable

from tqdm import tqdm

from attacks.best_iterate import BestIterate
from dgp.attack import Reconstruction, UserView, checkpoint_steps
from dgp.lazy import torch
from dgp.optim import Adam, LambdaLR, MultiStepLR


def optimize_images(images: torch.Tensor, labels: torch.Tensor,
                    objective: Callable[[torch.Tensor], torch.Tensor],
                    optimizer: Adam, scheduler: MultiStepLR | LambdaLR, iterations: int,
                    box: tuple[torch.Tensor, torch.Tensor], desc: str, signed: bool = False,
                    gradient_noise: Callable[[torch.Tensor], None] | None = None,
                    view: UserView | None = None) -> Reconstruction:
    """Minimise ``objective(images)`` over ``images`` (a leaf tensor the optimiser owns);
    ``labels`` are those the objective uses, returned with the images.

    ``signed`` steps on the sign of the gradient (Inverting Gradients); ``gradient_noise``
    may change the image gradient in place before that (Langevin noise, as in breaching).
    Images are clamped to ``box`` after every step. ``view``, the user view the objective
    applies, is told each step (``UserView.begin_step``). Returns the best images, their
    objective (the hard one for an annealed view) and phase, "ok" or "diverged" (a
    non-finite objective ends the run), the steps taken and the best images after each
    budget fraction (``checkpoint_steps``).
    """
    best = BestIterate(view, lambda held: _value(objective, held), images.detach().clone())
    status, step = "ok", 0
    marks, checkpoints = checkpoint_steps(iterations), {}
    for step in tqdm(range(1, iterations + 1), desc=desc, leave=False, disable=None):
        if view is not None:
            view.begin_step(step)
        value = objective(images)
        loss = float(value.detach())
        if not math.isfinite(loss):
            status = "diverged"
            break
        best.offer(loss, lambda: images.detach().clone())
        if step in marks:
            checkpoints[marks[step]] = best.settle().state
        _step(images, value, optimizer, scheduler, box, signed, gradient_noise)
    final = best.settle()
    return Reconstruction(final.state, labels, status, final.loss, step, checkpoints,
                          phase=final.phase)


def _step(images: torch.Tensor, value: torch.Tensor, optimizer: Adam,
          scheduler: MultiStepLR | LambdaLR, box: tuple[torch.Tensor, torch.Tensor],
          signed: bool, gradient_noise: Callable[[torch.Tensor], None] | None = None) -> None:
    """One optimiser step on ``value``'s image gradient (noised, then signed, as asked),
    the schedule moved on, the images clamped to ``box``."""
    optimizer.zero_grad()
    images.grad, = torch.autograd.grad(value, images)
    if gradient_noise is not None:
        gradient_noise(images.grad)
    if signed:
        images.grad.sign_()
    optimizer.step()
    scheduler.step()
    with torch.no_grad():
        images.copy_(torch.maximum(torch.minimum(images, box[1]), box[0]))


def _value(objective: Callable[[torch.Tensor], torch.Tensor], images: torch.Tensor) -> float:
    """The objective at held images, evaluated as at an iterate (a leaf that needs grad)."""
    return float(objective(images.clone().requires_grad_(True)).detach())


def optimize_image_batch(images: torch.Tensor, labels: list[torch.Tensor],
                         objective: Callable[[torch.Tensor], torch.Tensor],
                         rescores: list[Callable[[torch.Tensor], torch.Tensor]],
                         optimizer: Adam, scheduler: MultiStepLR | LambdaLR, iterations: int,
                         box: tuple[torch.Tensor, torch.Tensor], desc: str,
                         signed: bool = False,
                         views: list[UserView | None] | None = None) -> list[Reconstruction]:
    """``optimize_images`` for K independent problems at once: ``images`` [K, N, C, H, W]
    (the optimiser's leaf), ``objective`` gives the K objectives [K] (problem k's depends on
    ``images[k]`` only), ``rescores[k]`` problem k's objective alone (re-scoring a held
    iterate, ``attacks.best_iterate``). The optimiser must be elementwise (Adam), so that
    each problem steps as it would alone; each problem has its own best iterate, budget
    checkpoints, views and divergence (a diverged problem stops counting and is held at
    zeros, so that its non-finite values reach no other computation)."""
    count = len(images)
    views = views or [None] * count
    best = [BestIterate(view, lambda held, k=k: _value(rescores[k], held),
                        images[k].detach().clone()) for k, view in enumerate(views)]
    status, steps = ["ok"] * count, [iterations] * count
    alive = torch.ones(count, dtype=torch.bool, device=images.device)
    marks, checkpoints = checkpoint_steps(iterations), [{} for _ in range(count)]
    for step in tqdm(range(1, iterations + 1), desc=desc, leave=False, disable=None):
        for view in views:
            if view is not None:
                view.begin_step(step)
        values = objective(images)
        losses = values.detach().tolist()
        for k, loss in enumerate(losses):
            if status[k] == "ok" and not math.isfinite(loss):
                status[k], steps[k] = "diverged", step
                alive[k] = False
        if not alive.any():
            break
        for k in _running(status):
            best[k].offer(losses[k], lambda k=k: images[k].detach().clone())
            if step in marks:
                checkpoints[k][marks[step]] = best[k].settle().state
        _step(images, torch.where(alive, values, 0).sum(), optimizer, scheduler, box, signed)
        with torch.no_grad():
            images[~alive] = 0
    return [_result(best[k].settle(), labels[k], status[k], steps[k], checkpoints[k])
            for k in range(count)]


def _running(status: list[str]) -> list[int]:
    return [k for k, s in enumerate(status) if s == "ok"]


def _result(final, labels: torch.Tensor, status: str, steps: int,
            checkpoints: dict[float, torch.Tensor]) -> Reconstruction:
    return Reconstruction(final.state, labels, status, final.loss, steps, checkpoints,
                          phase=final.phase)
