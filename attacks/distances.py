"""Gradient distances as fused autograd functions (``attacks.objectives`` calls them):
forward and backward over whole gradients without autograd's elementwise temporaries."""

from __future__ import annotations

import torch
from torch.autograd.function import once_differentiable


def _flat_dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return torch.dot(a.reshape(-1), b.reshape(-1))


class EuclideanDistance(torch.autograd.Function):
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


class CosineDistance(torch.autograd.Function):
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
