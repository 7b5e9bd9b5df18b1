"""Error feedback: what a compressing defense did not send is added to the next round.

Per user and tensor: ``g <- g + e;  sent = C(g);  e <- g - sent``. Summed over rounds, the
sent updates plus the final residual equal the raw gradients, so nothing is lost, only
delayed. For DGP, entries that keep landing in the dropped top band are delayed for as long
as they stay there; ``residual_norm`` lets the report show whether that stays bounded.

Delayed is not harmless under the server's momentum. Around ``random`` (rand-k) every entry
waits a geometric number of rounds, ratio / (1 - ratio) on average (4 at ratio 0.8), whatever
its size, so the stiff directions are steered by stale gradients; inside SGD with momentum
0.9 that feedback loop oscillates and grows (tests/test_random_sparsification.py). ``topk``
and ``dgp`` send the large entries at once and delay only the small ones. Error feedback
also needs a compressor that shrinks what it is given: rand-k rescaled by 1 / keep-fraction
leaves a residual larger than its input, which then grows every round, so ``auto`` leaves
error feedback off for a defense that declares itself ``unbiased``.
"""

from __future__ import annotations

from typing import Any

import torch

from dgp.defense import Defense
from dgp.types import SharedGradient


class ErrorFeedback:
    """One user's residual memory around a defense (or a pass-through when disabled)."""

    def __init__(self, defense: Defense, enabled: bool = True) -> None:
        self.defense = defense
        self.enabled = enabled
        self.residuals: list[torch.Tensor] | None = None

    def corrected(self, gradients: list[torch.Tensor]) -> list[torch.Tensor]:
        """The gradient plus the carried residual (the gradient itself when disabled)."""
        if not self.enabled or self.residuals is None:
            return gradients
        return [g + e for g, e in zip(gradients, self.residuals, strict=True)]

    def keep_unsent(self, corrected: list[torch.Tensor], shared: SharedGradient) -> None:
        """Carry what of the ``corrected`` gradient the upload ``shared`` did not send."""
        if self.enabled:
            self.residuals = [c - s for c, s in zip(corrected, shared.tensors, strict=True)]

    def residual_norm(self) -> float:
        if self.residuals is None:
            return 0.0
        return float(torch.sqrt(sum(e.pow(2).sum() for e in self.residuals)))


def wants_error_feedback(defense: Defense, setting: Any) -> bool:
    """Resolve the config's ``error_feedback``: 'auto' means on for compressing defenses,
    except unbiased (rescaled) ones, whose residual error feedback would only amplify."""
    if setting == "auto":
        return defense.compresses and not defense.unbiased
    return bool(setting)
