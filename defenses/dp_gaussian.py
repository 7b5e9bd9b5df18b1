"""Local differential privacy with the Gaussian mechanism: clip, then add N(0, sigma^2).

The whole gradient (all tensors together) is clipped to L2 norm ``clip_norm``; the noise
standard deviation is ``ratio * clip_norm`` (ratio = noise multiplier, as in DP-SGD).

Accounting: each release is a Gaussian mechanism on the user's clipped batch gradient
(sensitivity ``clip_norm`` between a batch and no batch), composed over the releases with
opacus' RDP accountant at sample rate 1 (no amplification by sampling is claimed, since the
user clips its batch gradient, not each example's). The result is the (epsilon, delta) of the
user's data as a whole.

The protocol is public: a defense-aware attacker clips its candidate gradient to the same
norm (clipping is an invertible rescaling of the direction, so it alone protects nothing)
and scores the observation by the noise's likelihood.
"""

from __future__ import annotations

import math
import warnings

from dgp.defense import Defense
from dgp.lazy import torch
from dgp.params import Param
from dgp.types import SharedGradient, UserBatch, dense


def clip_to_norm(gradients: list[torch.Tensor], max_norm: float) -> list[torch.Tensor]:
    """Scale the gradient down so its global L2 norm is at most ``max_norm``."""
    norm = torch.sqrt(sum(g.pow(2).sum() for g in gradients))
    scale = torch.clamp(max_norm / (norm + 1e-12), max=1.0)
    return [g * scale for g in gradients]


CLIP_NORM = Param(1.0, float, low=0, low_open=True, doc="each user's update is clipped to it")


def noise_ratio_error(name: str, ratio: float) -> str | None:
    """Why a clipped-noise defense's ratio (noise multiplier) is invalid, or None."""
    if ratio < 0:
        return f"defense {name!r} needs ratio >= 0 (noise multiplier), got {ratio}"
    return None


def gaussian_epsilon(noise_multiplier: float, releases: int, delta: float) -> float:
    """Epsilon of ``releases`` Gaussian releases at this noise multiplier (opacus RDP)."""
    if releases <= 0:
        return 0.0
    if noise_multiplier <= 0:
        return math.inf
    from opacus.accountants import RDPAccountant  # slow to import; only DP defenses need it

    accountant = RDPAccountant()
    accountant.history = [(noise_multiplier, 1.0, releases)]
    with warnings.catch_warnings():  # "optimal order is the smallest alpha" at large epsilon
        warnings.simplefilter("ignore", UserWarning)
        return float(accountant.get_epsilon(delta))


class GaussianNoise(Defense):
    name = "dp_gaussian"
    family = "noise"
    ratio_meaning = "noise multiplier: noise std = ratio x clip_norm"
    example_ratio = 0.01
    parameters = {"clip_norm": CLIP_NORM,
                  "delta": Param(1e-5, float, low=0, high=1, low_open=True, high_open=True,
                                 doc="the delta of the (epsilon, delta) guarantee")}

    @classmethod
    def ratio_error(cls, ratio, params):
        return noise_ratio_error(cls.name, ratio)

    def apply(self, gradients: list[torch.Tensor], generator: torch.Generator | None = None,
              batch: UserBatch | None = None) -> SharedGradient:
        std = self.ratio * self.params["clip_norm"]
        noisy = []
        for g in clip_to_norm(gradients, self.params["clip_norm"]):
            noise = torch.randn(g.shape, generator=generator, dtype=g.dtype, device=g.device)
            noisy.append(g + std * noise)
        return dense(noisy)

    def accounting(self, releases: int) -> dict[str, float]:
        delta = self.params["delta"]
        return {"dp_epsilon": gaussian_epsilon(self.ratio, releases, delta), "dp_delta": delta}

    def attacker_view(self, candidate: list[torch.Tensor],
                      shared: SharedGradient) -> list[torch.Tensor]:
        return clip_to_norm(candidate, self.params["clip_norm"])

    def observation_nll(self, view: list[torch.Tensor],
                        shared: SharedGradient) -> torch.Tensor | None:
        """Gaussian: squared error over 2 sigma^2, per entry (None without noise)."""
        if self.ratio == 0:
            return None
        sigma = self.ratio * self.params["clip_norm"]
        return mean_over_entries(lambda r: r.pow(2).sum() / (2 * sigma**2), view, shared)


def mean_over_entries(per_tensor, view: list[torch.Tensor],
                       shared: SharedGradient) -> torch.Tensor:
    """``per_tensor(view - observed)`` summed over tensors, over the number of entries."""
    entries = sum(v.numel() for v in view)
    return sum(per_tensor(v - o.to(v.device))
               for v, o in zip(view, shared.tensors, strict=True)) / entries
