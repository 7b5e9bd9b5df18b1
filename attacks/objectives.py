"""Gradient-matching objectives and image priors, kept apart from the optimisation loops."""

from __future__ import annotations

import torch
from torch import nn
from torch.autograd.function import once_differentiable

from attacks.base import AttackTarget, UserView
from attacks.lean_conv import lean_convolutions
from dgp.gradients import training_loss
from dgp.protocol import Protocol
from dgp.updates import user_update


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
    size = target.batch_size
    with lean_convolutions():
        per_user = [user_update(target.model, images[u * size:(u + 1) * size],
                                labels[u * size:(u + 1) * size], protocol, create_graph=True)
                    for u in range(protocol.users)]
    if user_view is not None:
        per_user = [user_view(update) for update in per_user]
    return [sum(parts) for parts in zip(*per_user, strict=True)]


def _flat_dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return torch.dot(a.reshape(-1), b.reshape(-1))


class _EuclideanDistance(torch.autograd.Function):
    """Sum of squared differences with one temporary per tensor: a large model's gradient is
    tens of MB per tensor, and autograd's elementwise graph (difference, square, their
    backward) would allocate and sweep it several times per iteration."""

    @staticmethod
    def forward(ctx, count: int, *tensors: torch.Tensor) -> torch.Tensor:
        differences = [c - t for c, t in zip(tensors[:count], tensors[count:], strict=True)]
        ctx.save_for_backward(*differences)
        ctx.count = count
        return sum(_flat_dot(d, d) for d in differences)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: torch.Tensor):
        differences = ctx.saved_tensors
        scaled = [d * (2 * grad) for d in differences]
        target_grads = [-g if ctx.needs_input_grad[1 + ctx.count + i] else None
                        for i, g in enumerate(scaled)]
        candidate_grads = [g if ctx.needs_input_grad[1 + i] else None
                           for i, g in enumerate(scaled)]
        return None, *candidate_grads, *target_grads


class _CosineDistance(torch.autograd.Function):
    """1 - cosine similarity with dot products (no temporaries) forward and one fused
    ``a * t + b * c`` per tensor backward, for the same reason as the Euclidean one."""

    @staticmethod
    def forward(ctx, count: int, *tensors: torch.Tensor) -> torch.Tensor:
        candidate, target = tensors[:count], tensors[count:]
        dot = sum(_flat_dot(c, t) for c, t in zip(candidate, target, strict=True))
        c_norm = torch.sqrt(sum(_flat_dot(c, c) for c in candidate))
        t_norm = torch.sqrt(sum(_flat_dot(t, t) for t in target))
        ctx.save_for_backward(dot, c_norm, t_norm, *tensors)
        ctx.count = count
        return 1 - dot / (c_norm * t_norm + 1e-12)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: torch.Tensor):
        dot, c_norm, t_norm, *tensors = ctx.saved_tensors
        candidate, target = tensors[:ctx.count], tensors[ctx.count:]
        denominator = c_norm * t_norm + 1e-12
        # d/dc [1 - <c,t> / (|c||t|)] = -t / den + <c,t> |t| / (|c| den^2) * c, and alike for t
        scale = grad / denominator
        own = grad * dot / denominator**2

        def gradient(index: int, this: torch.Tensor, other: torch.Tensor, this_norm, other_norm):
            if not ctx.needs_input_grad[1 + index]:
                return None
            return other.mul(-scale).addcmul_(this, own * other_norm / this_norm)

        candidate_grads = [gradient(i, c, t, c_norm, t_norm)
                           for i, (c, t) in enumerate(zip(candidate, target, strict=True))]
        target_grads = [gradient(ctx.count + i, t, c, t_norm, c_norm)
                        for i, (c, t) in enumerate(zip(candidate, target, strict=True))]
        return None, *candidate_grads, *target_grads


def euclidean_distance(candidate: list[torch.Tensor], target: list[torch.Tensor]) -> torch.Tensor:
    """Sum of squared differences over all tensors (DLG's objective)."""
    return _EuclideanDistance.apply(len(candidate), *candidate, *target)


def cosine_distance(candidate: list[torch.Tensor], target: list[torch.Tensor]) -> torch.Tensor:
    """1 - cosine similarity of the whole gradients (Inverting Gradients' objective)."""
    return _CosineDistance.apply(len(candidate), *candidate, *target)


def total_variation(images: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference of neighbouring pixels (anisotropic TV)."""
    dx = (images[..., :, 1:] - images[..., :, :-1]).abs().mean()
    dy = (images[..., 1:, :] - images[..., :-1, :]).abs().mean()
    return dx + dy
