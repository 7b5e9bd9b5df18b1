"""Top-k gradient pruning (GP): send the largest-magnitude entries of each tensor.

What the protocol reveals: the sent positions, and that every unsent entry is no larger in
magnitude than the smallest sent one (the constraint a defense-aware attacker imposes).
"""

from __future__ import annotations

from dgp.defense import Defense
from dgp.lazy import torch
from dgp.pruning import band_violation, prune_ratio_error, rank_band_mask, sent_count
from dgp.types import SharedGradient, UserBatch


class TopK(Defense):
    name = "topk"
    compresses = True
    family = "pruning"
    ratio_meaning = "fraction of entries not sent per tensor (the largest 1-ratio are sent)"
    example_ratio = 0.8

    @classmethod
    def ratio_error(cls, ratio, params):
        return prune_ratio_error(cls.name, ratio)

    def update_band(self, numel: int) -> tuple[int, int] | None:
        return 0, sent_count(numel, self.ratio)

    def apply(self, gradients: list[torch.Tensor], generator: torch.Generator | None = None,
              batch: UserBatch | None = None) -> SharedGradient:
        masks = [rank_band_mask(g, *self.update_band(g.numel())) for g in gradients]
        return SharedGradient([g * m for g, m in zip(gradients, masks, strict=True)], masks)

    def constraint_penalty(self, candidate: list[torch.Tensor],
                           shared: SharedGradient) -> torch.Tensor:
        return band_violation(candidate, shared.tensors, shared.masks, [0] * len(candidate))
