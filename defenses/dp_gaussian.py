"""Local differential privacy with the Gaussian mechanism: clip, then add N(0, sigma^2).

The whole gradient (all tensors together) is clipped to L2 norm ``clip_norm``; the noise
standard deviation is ``ratio * clip_norm`` (ratio = noise multiplier, as in DP-SGD).
"""

from __future__ import annotations

import torch

from defenses.base import Defense, SharedGradient


def clip_to_norm(gradients: list[torch.Tensor], max_norm: float) -> list[torch.Tensor]:
    """Scale the gradient down so its global L2 norm is at most ``max_norm``."""
    norm = torch.sqrt(sum(g.pow(2).sum() for g in gradients))
    scale = torch.clamp(max_norm / (norm + 1e-12), max=1.0)
    return [g * scale for g in gradients]


class GaussianNoise(Defense):
    name = "dp_gaussian"
    ratio_meaning = "noise multiplier: noise std = ratio x clip_norm"
    defaults = {"clip_norm": 1.0}

    @classmethod
    def ratio_error(cls, ratio, params):
        if params["clip_norm"] <= 0:
            return f"dp_gaussian parameter clip_norm must be > 0, got {params['clip_norm']}"
        if ratio < 0:
            return f"defense 'dp_gaussian' needs ratio >= 0 (noise multiplier), got {ratio}"
        return None

    def apply(self, gradients: list[torch.Tensor],
              generator: torch.Generator | None = None) -> SharedGradient:
        std = self.ratio * self.params["clip_norm"]
        noisy = []
        for g in clip_to_norm(gradients, self.params["clip_norm"]):
            noise = torch.randn(g.shape, generator=generator, dtype=g.dtype, device=g.device)
            noisy.append(g + std * noise)
        return SharedGradient(noisy, [None] * len(noisy))
