"""The gradient a user shares: one per parameter tensor, of the cross-entropy loss."""

from __future__ import annotations

import torch
from torch import nn


def loss_and_gradients(model: nn.Module, images: torch.Tensor,
                       labels: torch.Tensor) -> tuple[float, list[torch.Tensor]]:
    """Mean cross-entropy over the batch and its gradient per parameter tensor (detached),
    from one forward pass (a second one would also move BatchNorm's running statistics)."""
    loss = nn.functional.cross_entropy(model(images), labels)
    params = [p for p in model.parameters() if p.requires_grad]
    return float(loss.detach()), [g.detach() for g in torch.autograd.grad(loss, params)]


def parameter_gradients(model: nn.Module, images: torch.Tensor,
                        labels: torch.Tensor) -> list[torch.Tensor]:
    """Gradient of the mean cross-entropy over the batch, per parameter tensor (detached)."""
    return loss_and_gradients(model, images, labels)[1]
