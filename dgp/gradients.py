"""The gradient a user shares: one per parameter tensor, of the cross-entropy loss."""

from __future__ import annotations

import torch
from torch import nn


def parameter_gradients(model: nn.Module, images: torch.Tensor,
                        labels: torch.Tensor) -> list[torch.Tensor]:
    """Gradient of the mean cross-entropy over the batch, per parameter tensor (detached)."""
    loss = nn.functional.cross_entropy(model(images), labels)
    params = [p for p in model.parameters() if p.requires_grad]
    return [g.detach() for g in torch.autograd.grad(loss, params)]
