"""DGP, Dual Gradient Pruning (AAAI 2024): prune both ends of the magnitude ranking.

Per parameter tensor with n entries ranked by |g| (largest first): drop the top ``p1 * n``
(they carry most of what an attacker uses), send the next ``(1 - ratio) * n``, drop the rest.
At ratio 0.8 and p1 = 0.05 this is the paper's default band (keep 75th < |g| <= 95th
percentile).

Top count (``top_count``): by default (``at_least_one``) ``p1 * n`` is rounded to the nearest
integer, and when that is 0 but the tensor is pruned at all (fewer entries sent than it has)
the single largest entry is still dropped, so small layers such as the classifier bias
(which leaks the label) are never sent with their largest value intact. The DGP authors'
training compressor (``DGPcompressor.py``: ``k1 = size // 20``) floors instead, so tensors
of fewer than 1 / p1 entries keep their largest entry: ``top_count: floor`` reproduces that.

What the protocol reveals to a defense-aware attacker: the sent positions, and that of each
tensor's unsent entries the ``top`` largest lie above the largest sent magnitude and the rest
below the smallest (``constraint_penalty``).
"""

from __future__ import annotations

import math

from dgp.defense import Defense
from dgp.lazy import torch
from dgp.params import Param
from dgp.pruning import band_violation, prune_ratio_error, rank_band_mask, sent_count
from dgp.types import SharedGradient, UserBatch

TOP_COUNTS = ("at_least_one", "floor")


def top_drop_count(numel: int, ratio: float, p1: float, rule: str = "at_least_one") -> int:
    """Number of largest-magnitude entries DGP removes from a tensor (see module docstring)."""
    keep = sent_count(numel, ratio)
    if rule == "floor":
        drop = math.floor(p1 * numel)
    else:
        drop = math.floor(p1 * numel + 0.5)
        if drop == 0 and keep < numel and p1 > 0:
            drop = 1
    return min(drop, numel - keep)


class DualGradientPruning(Defense):
    name = "dgp"
    compresses = True
    family = "pruning"
    ratio_meaning = "fraction of entries not sent per tensor (top p1 dropped, next 1-ratio sent)"
    example_ratio = 0.8
    parameters = {
        "p1": Param(0.05, float, low=0, high=1, high_open=True,
                    doc="share of each tensor's largest entries dropped"),
        "top_count": Param("at_least_one", str, choices=TOP_COUNTS,
                           doc="how p1 x numel is rounded (at_least_one: the DGP code's)"),
    }

    @classmethod
    def ratio_error(cls, ratio, params):
        return prune_ratio_error(cls.name, ratio, low=params["p1"])

    def top_count(self, numel: int) -> int:
        """How many of a tensor's largest entries are dropped."""
        return top_drop_count(numel, self.ratio, self.params["p1"], self.params["top_count"])

    def band(self, numel: int) -> tuple[int, int]:
        """(largest entries dropped, entries sent) of a tensor of ``numel`` entries."""
        return self.top_count(numel), sent_count(numel, self.ratio)

    def update_band(self, numel: int) -> tuple[int, int] | None:
        return self.band(numel)

    def apply(self, gradients: list[torch.Tensor], generator: torch.Generator | None = None,
              batch: UserBatch | None = None) -> SharedGradient:
        tensors, masks = [], []
        for g in gradients:
            mask = rank_band_mask(g, *self.band(g.numel()))
            tensors.append(g * mask)
            masks.append(mask)
        return SharedGradient(tensors, masks)

    def constraint_penalty(self, candidate: list[torch.Tensor],
                           shared: SharedGradient) -> torch.Tensor:
        return band_violation(candidate, shared.tensors, shared.masks,
                              [self.top_count(c.numel()) for c in candidate])
