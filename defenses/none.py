"""No defense: the raw gradient is shared (the undefended baseline)."""

from __future__ import annotations

import torch

from defenses.base import Defense, SharedGradient, UserBatch, dense


class NoDefense(Defense):
    name = "none"
    family = "none"
    ratio_meaning = "unused (always 0)"

    @classmethod
    def ratio_error(cls, ratio, params):
        return None if ratio == 0 else f"defense 'none' takes only ratio 0, got {ratio}"

    def apply(self, gradients: list[torch.Tensor], generator: torch.Generator | None = None,
              batch: UserBatch | None = None) -> SharedGradient:
        return dense([g.clone() for g in gradients])
