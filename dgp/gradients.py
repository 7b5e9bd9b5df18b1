"""The gradient a user shares: one per parameter tensor, of the training loss.

The loss is the cross-entropy against class indices or, for label-mixing defenses, against
class probabilities, plus any penalty a model's modules add (PRECODE's KL term).
"""

from __future__ import annotations

from collections.abc import Callable
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
                  targets: torch.Tensor | Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
    """Cross-entropy (hard or soft targets, or targets as a function of the logits: an
    attacker's model of targets it cannot see) plus the model's own penalty terms."""
    logits = model(inputs)
    if callable(targets):
        targets = targets(logits)
    return torch.nn.functional.cross_entropy(logits, targets) + model_penalty(model)


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


def linear_input(weight_grad: torch.Tensor, bias_grad: torch.Tensor) -> torch.Tensor:
    """The input [F] of a linear layer ``y = W x + b`` that one image passed through, read
    off the layer's gradient: ``dW = dy x^T`` and ``db = dy``, so every row ``i`` gives
    ``x = dW_i / db_i`` (Phong et al., 2017). Least squares over the rows whose two entries
    were sent (nonzero), ``x_j = sum_i db_i dW_ij / sum_i db_i^2``: exact for an exact
    gradient, the single-row ratio of the reference (the Bayes framework's PRECODE break)
    where one row is left, less noisy under noise. Entries no row sent are 0."""
    weight_grad = weight_grad.flatten(1)
    db = bias_grad.unsqueeze(1) * ((weight_grad != 0) & (bias_grad != 0).unsqueeze(1))
    numerator = (db * weight_grad).sum(0)
    denominator = (db * db).sum(0)
    return torch.where(denominator > 0, numerator / denominator.clamp_min(1e-30),
                       torch.zeros_like(numerator))
