"""DGP, Dual Gradient Pruning (AAAI 2024): prune both ends of the magnitude ranking.

Per parameter tensor with n entries ranked by |g| (largest first): drop the top ``p1 * n``
(they carry most of what an attacker uses), send the next ``(1 - ratio) * n``, drop the rest.
At ratio 0.8 and p1 = 0.05 this is the paper's default band (keep 75th < |g| <= 95th
percentile).

Tiny tensors: when ``p1 * n`` rounds to 0 but the tensor is pruned at all (fewer entries sent
than it has), the single largest entry is still dropped, so small layers such as the
classifier bias (which leaks the label) are never sent with their largest value intact.
"""

from __future__ import annotations

import math

import torch

from defenses.base import Defense, SharedGradient, UserBatch
from defenses.pruning import prune_ratio_error, rank_band_mask, sent_count


def top_drop_count(numel: int, ratio: float, p1: float) -> int:
    """Number of largest-magnitude entries DGP removes from a tensor (see module docstring)."""
    keep = sent_count(numel, ratio)
    drop = math.floor(p1 * numel + 0.5)
    if drop == 0 and keep < numel and p1 > 0:
        drop = 1
    return min(drop, numel - keep)


class DualGradientPruning(Defense):
    name = "dgp"
    compresses = True
    family = "pruning"
    ratio_meaning = "fraction of entries not sent per tensor (top p1 dropped, next 1-ratio sent)"
    defaults = {"p1": 0.05}

    @classmethod
    def ratio_error(cls, ratio, params):
        p1 = params["p1"]
        if not 0.0 <= p1 < 1.0:
            return f"dgp parameter p1 must be in [0, 1), got {p1}"
        return prune_ratio_error(cls.name, ratio, low=p1)

    def apply(self, gradients: list[torch.Tensor], generator: torch.Generator | None = None,
              batch: UserBatch | None = None) -> SharedGradient:
        tensors, masks = [], []
        for g in gradients:
            keep = sent_count(g.numel(), self.ratio)
            mask = rank_band_mask(g, top_drop_count(g.numel(), self.ratio, self.params["p1"]),
                                  keep)
            tensors.append(g * mask)
            masks.append(mask)
        return SharedGradient(tensors, masks)
