"""The gradient a user shares: one per parameter tensor, of the training loss.

The loss is the cross-entropy against class indices or, for label-mixing defenses, against
class probabilities, plus any penalty a model's modules add (PRECODE's KL term).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from dgp.lazy import torch

if TYPE_CHECKING:
    from torch import nn


def model_penalty(model: nn.Module) -> torch.Tensor | float:
    """Sum of the loss terms the model's ``PenalizedModule`` layers report for their last
    forward pass."""
    from dgp.penalty import PenalizedModule  # an nn.Module: not read by validation

    return sum((m.penalty() for m in model.modules() if isinstance(m, PenalizedModule)), 0.0)


def training_loss(model: nn.Module, inputs: torch.Tensor,
                  targets: torch.Tensor) -> torch.Tensor:
    """Cross-entropy (hard or soft targets) plus the model's own penalty terms."""
    return torch.nn.functional.cross_entropy(model(inputs), targets) + model_penalty(model)


def loss_and_gradients(model: nn.Module, inputs: torch.Tensor,
                       targets: torch.Tensor) -> tuple[float, list[torch.Tensor]]:
    """Training loss and its gradient per parameter tensor (detached), from one forward
    pass (a second one would also move BatchNorm's running statistics)."""
    loss = training_loss(model, inputs, targets)
    params = [p for p in model.parameters() if p.requires_grad]
    return float(loss.detach()), [g.detach() for g in torch.autograd.grad(loss, params)]


def parameter_gradients(model: nn.Module, inputs: torch.Tensor,
                        targets: torch.Tensor) -> list[torch.Tensor]:
    """Gradient of the training loss per parameter tensor (detached)."""
    return loss_and_gradients(model, inputs, targets)[1]
