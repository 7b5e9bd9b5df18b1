"""The interface every defense implements, and what it hands to the server."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar

import torch


@dataclass
class SharedGradient:
    """What leaves the user after the defense.

    ``tensors`` is the gradient as the server reconstructs it (zeros where nothing was sent);
    ``masks`` marks the transmitted entries per tensor (None: every entry was sent), which is
    what the communication cost is counted from; ``bits_per_value`` is the width of one
    transmitted value; ``positions_known`` says the server already knows the sent positions
    (an aligned mask), so no index set travels with the values.
    """

    tensors: list[torch.Tensor]
    masks: list[torch.Tensor | None]
    bits_per_value: int = 32
    positions_known: bool = False


class Defense(ABC):
    """A gradient defense applied by a user before sharing.

    ``ratio`` is the defense's strength axis: for pruning defenses the fraction of entries
    *not* sent, for noise defenses the noise multiplier. Subclasses declare their parameters
    with defaults in ``defaults`` and validate a ratio in ``ratio_error``.
    """

    name: ClassVar[str]
    ratio_meaning: ClassVar[str]
    defaults: ClassVar[dict[str, Any]] = {}
    # Compressing defenses drop information that error feedback can carry to later rounds;
    # they get error feedback in training by default (as in the DGP code).
    compresses: ClassVar[bool] = False

    def __init__(self, ratio: float, **params: Any) -> None:
        unknown = set(params) - set(self.defaults)
        if unknown:
            raise ValueError(f"defense {self.name!r} has no parameter(s) {sorted(unknown)}; "
                             f"known: {sorted(self.defaults) or 'none'}")
        self.params = {**self.defaults, **params}
        error = self.ratio_error(ratio, self.params)
        if error:
            raise ValueError(error)
        self.ratio = float(ratio)

    @classmethod
    def ratio_error(cls, ratio: float, params: dict[str, Any]) -> str | None:
        """Return why ``ratio`` is invalid for this defense, or None when it is valid."""
        return None

    @abstractmethod
    def apply(self, gradients: list[torch.Tensor],
              generator: torch.Generator | None = None) -> SharedGradient:
        """Defend one user's gradient (a list of per-parameter tensors)."""
