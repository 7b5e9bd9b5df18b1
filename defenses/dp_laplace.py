"""Local differential privacy with Laplace noise: clip, then add Laplace(0, b) per entry.

Clipping is to the global L2 norm ``clip_norm``, as for ``dp_gaussian``, so the two noise
defenses differ only in the noise law at the same ratio: the Laplace scale is
``b = ratio * clip_norm`` (entry std = sqrt(2) * b). No epsilon is reported: a pure-DP
Laplace guarantee needs L1 clipping, which the DGP comparison's defense does not do.
A defense-aware attacker clips as the user does and scores by the Laplace likelihood.
"""

from __future__ import annotations

from defenses.dp_gaussian import (
    CLIP_NORM,
    GaussianNoise,
    clip_to_norm,
    mean_over_entries,
    noise_ratio_error,
)
from dgp.defense import Defense
from dgp.lazy import torch
from dgp.types import SharedGradient, UserBatch, dense


def laplace_noise(shape: torch.Size, scale: float, generator: torch.Generator | None,
                  like: torch.Tensor) -> torch.Tensor:
    """Laplace(0, scale) samples by inverse CDF (torch's distribution takes no generator)."""
    u = torch.rand(shape, generator=generator, dtype=like.dtype, device=like.device) - 0.5
    return -scale * torch.sign(u) * torch.log1p(-2 * u.abs())


class LaplaceNoise(Defense):
    name = "dp_laplace"
    family = "noise"
    ratio_meaning = "noise multiplier: Laplace scale b = ratio x clip_norm"
    example_ratio = 0.01
    parameters = {"clip_norm": CLIP_NORM}

    @classmethod
    def ratio_error(cls, ratio, params):
        return noise_ratio_error(cls.name, ratio)

    def apply(self, gradients: list[torch.Tensor], generator: torch.Generator | None = None,
              batch: UserBatch | None = None) -> SharedGradient:
        scale = self.ratio * self.params["clip_norm"]
        return dense([g + laplace_noise(g.shape, scale, generator, g)
                      for g in clip_to_norm(gradients, self.params["clip_norm"])])

    attacker_view = GaussianNoise.attacker_view

    def observation_nll(self, view: list[torch.Tensor],
                        shared: SharedGradient) -> torch.Tensor | None:
        """Laplace: absolute error over b, per entry (None without noise)."""
        if self.ratio == 0:
            return None
        scale = self.ratio * self.params["clip_norm"]
        return mean_over_entries(lambda r: r.abs().sum() / scale, view, shared)
