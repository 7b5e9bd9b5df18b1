"""ADGP, aligned Dual Gradient Pruning: every user sends the same positions in a round.

Mask rule (the paper's "trusted broadcaster"; its exact rule could not be confirmed from the
full text): in round t, user ``t mod U`` is the broadcaster. It computes the DGP band of its
own error-corrected gradient (drop the top p1 of |g| per tensor, keep the next 1 - ratio)
and broadcasts that mask; every user then sends its values at exactly those positions.
The broadcaster's upload carries the positions (it is DGP's); the members upload values
only, and the averaged update is sparse on the same mask, so the download is sparse too.

A privacy job attacks both roles: the broadcaster (its upload equals DGP's, band
constraint included) and a member, whose gradient goes out at the broadcaster's mask. A
member's upload reveals nothing about its own unsent entries (the mask was chosen from
another gradient), so no band constraint applies to it, and its own largest entries may be
among those sent (how many: docs/defenses.md).
"""

from __future__ import annotations

from defenses.dual_pruning import DualGradientPruning
from dgp.lazy import torch
from dgp.types import SharedGradient, UserBatch


class AlignedDualGradientPruning(DualGradientPruning):
    name = "adgp"
    ratio_meaning = ("fraction of entries not sent per tensor (dgp band of a broadcaster's "
                     "gradient, shared by all users)")
    roles = ("broadcaster", "member")

    def update_band(self, numel: int) -> tuple[int, int] | None:
        return None  # members send at the broadcaster's band, not their own

    def share_round(self, updates: list[list[torch.Tensor]],
                    generator: torch.Generator | None = None,
                    batches: list[UserBatch | None] | None = None,
                    leader: int = 0) -> list[SharedGradient]:
        """The leader broadcasts the DGP band of its own gradient (its upload is DGP's, the
        positions with it); every other user sends its values at that band, positions known
        to the server in advance."""
        own = self.apply(updates[leader])
        return [own if user == leader else self.at_band(update, own.masks)
                for user, update in enumerate(updates)]

    @staticmethod
    def at_band(gradients: list[torch.Tensor], masks: list[torch.Tensor]) -> SharedGradient:
        """A member's upload: its values at the broadcast positions."""
        return SharedGradient([g * m for g, m in zip(gradients, masks, strict=True)],
                              list(masks), positions_known=True)

    def constraint_penalty(self, candidate: list[torch.Tensor],
                           shared: SharedGradient) -> torch.Tensor | float:
        """DGP's band for the broadcaster; nothing for a member (positions known in advance:
        the mask came from someone else's gradient)."""
        if shared.positions_known:
            return 0.0
        return super().constraint_penalty(candidate, shared)
