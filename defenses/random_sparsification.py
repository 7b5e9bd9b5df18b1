"""Random sparsification: send a uniformly random subset of each tensor's entries.

The control for magnitude-based pruning: the same number of entries per tensor as ``topk``
and ``dgp`` at the same ratio, chosen without looking at the values. With ``rescale`` the
sent values are divided by the keep fraction, which makes the shared gradient unbiased.
The server knows the positions and the rescaling (``attacker_view``); the unsent entries'
values are not constrained by anything it sees.
"""

from __future__ import annotations

from dgp.defense import Defense
from dgp.lazy import torch
from dgp.params import Param
from dgp.pruning import prune_ratio_error, sent_count
from dgp.types import SharedGradient, UserBatch


class RandomSparsification(Defense):
    name = "random"
    family = "pruning"
    compresses = True
    ratio_meaning = "fraction of entries not sent per tensor (a uniform random 1-ratio sent)"
    example_ratio = 0.8
    parameters = {"rescale": Param(False, bool, doc="scale sent entries by 1 / (1 - ratio)")}

    @classmethod
    def ratio_error(cls, ratio, params):
        return prune_ratio_error(cls.name, ratio)

    @property
    def unbiased(self) -> bool:
        """Rescaled, the shared gradient is unbiased and error feedback would amplify its
        residual (> the input); ``error_feedback: auto`` then leaves it off. Unscaled, error
        feedback delays each entry by ratio / (1 - ratio) rounds on average."""
        return self.params["rescale"]

    def apply(self, gradients: list[torch.Tensor], generator: torch.Generator | None = None,
              batch: UserBatch | None = None) -> SharedGradient:
        tensors, masks = [], []
        for g in gradients:
            keep = sent_count(g.numel(), self.ratio)
            chosen = torch.randperm(g.numel(), generator=generator)[:keep].to(g.device)
            mask = torch.zeros(g.numel(), dtype=torch.bool, device=g.device)
            mask[chosen] = True
            mask = mask.view_as(g)
            sent = g * mask
            if self.params["rescale"] and keep:
                sent = sent * (g.numel() / keep)
            tensors.append(sent)
            masks.append(mask)
        return SharedGradient(tensors, masks)

    def attacker_view(self, candidate: list[torch.Tensor],
                      shared: SharedGradient) -> list[torch.Tensor]:
        view = super().attacker_view(candidate, shared)
        if not self.params["rescale"]:
            return view
        return [v if m is None or not bool(m.any()) else v * (m.numel() / int(m.sum()))
                for v, m in zip(view, shared.masks, strict=True)]
