"""Gradient-matching objectives and image priors, kept apart from the optimisation loops."""

from __future__ import annotations

from typing import TYPE_CHECKING

from dgp.attack import AttackTarget, UserView
from dgp.gradients import training_loss
from dgp.lazy import torch
from dgp.protocol import Protocol
from dgp.updates import user_update

if TYPE_CHECKING:
    from torch import nn


def candidate_gradients(model: nn.Module, images: torch.Tensor,
                        labels: torch.Tensor) -> list[torch.Tensor]:
    """The gradient a candidate batch would produce, differentiable w.r.t. the images (the
    user's loss as the server knows it, model penalties such as PRECODE's included).
    Convolutions are recorded lean: differentiating this gradient w.r.t. the images then
    skips the weight-gradient pass stock PyTorch would waste."""
    from attacks.lean_conv import lean_convolutions  # a torch mode: not read by validation

    with lean_convolutions():
        loss = training_loss(model, images, labels)
    params = [p for p in model.parameters() if p.requires_grad]
    return list(torch.autograd.grad(loss, params, create_graph=True))


def candidate_update(target: AttackTarget, images: torch.Tensor, labels: torch.Tensor,
                     user_view: UserView | None = None) -> list[torch.Tensor]:
    """What a candidate batch would send under the target's protocol: its gradient
    (FedSGD), or the weight change its local steps make (FedAvg: the steps simulated
    differentiably, as Dimitrov et al. and breaching's multi-step objective do), summed over
    the aggregated users, each ``target.batch_size`` consecutive candidate images one user's
    batch, each user's update first passed through ``user_view`` if given (a defense-aware
    attacker's model of what each user's defense lets through). Differentiable w.r.t. the
    images."""
    protocol = target.protocol
    if protocol == Protocol() and user_view is None:
        return candidate_gradients(target.model, images, labels)
    from attacks.lean_conv import lean_convolutions

    size = target.batch_size
    with lean_convolutions():
        per_user = [user_update(target.model, images[u * size:(u + 1) * size],
                                labels[u * size:(u + 1) * size], protocol, create_graph=True)
                    for u in range(protocol.users)]
    if user_view is not None:
        per_user = [user_view(update) for update in per_user]
    return [sum(parts) for parts in zip(*per_user, strict=True)]


def euclidean_distance(candidate: list[torch.Tensor], target: list[torch.Tensor]) -> torch.Tensor:
    """Sum of squared differences over all tensors (DLG's objective)."""
    from attacks.distances import EuclideanDistance  # torch classes: not read by validation

    return EuclideanDistance.apply(len(candidate), *candidate, *target)


def cosine_distance(candidate: list[torch.Tensor], target: list[torch.Tensor]) -> torch.Tensor:
    """1 - cosine similarity of the whole gradients (Inverting Gradients' objective)."""
    from attacks.distances import CosineDistance

    return CosineDistance.apply(len(candidate), *candidate, *target)


def total_variation(images: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference of neighbouring pixels (anisotropic TV)."""
    dx = (images[..., :, 1:] - images[..., :, :-1]).abs().mean()
    dy = (images[..., 1:, :] - images[..., :-1, :]).abs().mean()
    return dx + dy


def cosine_distances(candidate: list[torch.Tensor], target: list[torch.Tensor],
                     ) -> torch.Tensor:
    """``cosine_distance`` of K problems at once: each tensor [K, ...], the result [K]."""
    def dot(a: list[torch.Tensor], b: list[torch.Tensor]) -> torch.Tensor:
        return sum((x * y).flatten(1).sum(1) for x, y in zip(a, b, strict=True))

    return 1 - dot(candidate, target) / (torch.sqrt(dot(candidate, candidate))
                                         * torch.sqrt(dot(target, target)) + 1e-12)


def total_variations(images: torch.Tensor) -> torch.Tensor:
    """``total_variation`` of K problems' images [K, N, C, H, W] at once: [K]."""
    dx = (images[..., :, 1:] - images[..., :, :-1]).abs().flatten(1).mean(1)
    dy = (images[..., 1:, :] - images[..., :-1, :]).abs().flatten(1).mean(1)
    return dx + dy
