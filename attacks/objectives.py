"""Gradient-matching objectives and image priors, kept apart from the optimisation loops."""

from __future__ import annotations

import torch
from torch import nn

from attacks.lean_conv import lean_convolutions
from dgp.gradients import training_loss


def candidate_gradients(model: nn.Module, images: torch.Tensor,
                        labels: torch.Tensor) -> list[torch.Tensor]:
    """The gradient a candidate batch would produce, differentiable w.r.t. the images (the
    user's loss as the server knows it, model penalties such as PRECODE's included).
    Convolutions are recorded lean: differentiating this gradient w.r.t. the images then
    skips the weight-gradient pass stock PyTorch would waste."""
    with lean_convolutions():
        loss = training_loss(model, images, labels)
    params = [p for p in model.parameters() if p.requires_grad]
    return list(torch.autograd.grad(loss, params, create_graph=True))


def euclidean_distance(candidate: list[torch.Tensor], target: list[torch.Tensor]) -> torch.Tensor:
    """Sum of squared differences over all tensors (DLG's objective)."""
    return sum((c - t).pow(2).sum() for c, t in zip(candidate, target, strict=True))


def cosine_distance(candidate: list[torch.Tensor], target: list[torch.Tensor]) -> torch.Tensor:
    """1 - cosine similarity of the whole gradients (Inverting Gradients' objective)."""
    dot = sum((c * t).sum() for c, t in zip(candidate, target, strict=True))
    c_norm = torch.sqrt(sum(c.pow(2).sum() for c in candidate))
    t_norm = torch.sqrt(sum(t.pow(2).sum() for t in target))
    return 1 - dot / (c_norm * t_norm + 1e-12)


def total_variation(images: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference of neighbouring pixels (anisotropic TV)."""
    dx = (images[..., :, 1:] - images[..., :, :-1]).abs().mean()
    dy = (images[..., 1:, :] - images[..., :-1, :]).abs().mean()
    return dx + dy
