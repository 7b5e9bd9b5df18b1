"""ADGP, aligned Dual Gradient Pruning: every user sends the same positions in a round.

Mask rule (the paper's "trusted broadcaster"; its exact rule could not be confirmed from the
full text): in round t, user ``t mod U`` is the broadcaster. It computes the DGP band of its
own error-corrected gradient (drop the top p1 of |g| per tensor, keep the next 1 - ratio)
and broadcasts that mask; every user then sends its values at exactly those positions.
The server knows the positions, so users upload values only, and the averaged update is
sparse on the same mask, so the download is sparse too.

A privacy job attacks both roles: the broadcaster (its upload equals DGP's, band
constraint included) and a member, whose gradient goes out at the broadcaster's mask. A
member's upload reveals nothing about its own unsent entries (the mask was chosen from
another gradient), so no band constraint applies to it, and its own largest entries may be
among those sent: measured on digits with 16-image batches (untrained LeNet, five pairs of
users), 19 % (15-28 %) of a member's top-5 % entries go out.
"""

from __future__ import annotations

from defenses.dual_pruning import DualGradientPruning
from dgp.lazy import torch
from dgp.types import SharedGradient


class AlignedDualGradientPruning(DualGradientPruning):
    name = "adgp"
    ratio_meaning = ("fraction of entries not sent per tensor (dgp band of a broadcaster's "
                     "gradient, shared by all users)")
    aligned = True

    def update_band(self, numel: int) -> tuple[int, int] | None:
        return None  # members send at the broadcaster's band, not their own

    def band_masks(self, gradients: list[torch.Tensor]) -> list[torch.Tensor]:
        """The broadcaster's masks: the DGP band of its own gradient."""
        return self.apply(gradients).masks

    def apply_with_masks(self, gradients: list[torch.Tensor],
                         masks: list[torch.Tensor]) -> SharedGradient:
        """Send values at the broadcast positions; the server already knows them."""
        return SharedGradient([g * m for g, m in zip(gradients, masks, strict=True)],
                              list(masks), positions_known=True)

    def constraint_penalty(self, candidate: list[torch.Tensor],
                           shared: SharedGradient) -> torch.Tensor | float:
        """DGP's band for the broadcaster; nothing for a member (positions known in advance:
        the mask came from someone else's gradient)."""
        if shared.positions_known:
            return 0.0
        return super().constraint_penalty(candidate, shared)
