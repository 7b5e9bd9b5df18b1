"""Layers that add a term to the training loss (``dgp.gradients`` sums them).

Apart from ``dgp.gradients`` so that reading the plugins' declarations imports no torch.
"""

from __future__ import annotations

import torch
from torch import nn


class PenalizedModule(nn.Module):
    """A layer that adds a term to the training loss (PRECODE's bottleneck: its KL), which
    every user's and every attacker's loss includes."""

    def penalty(self) -> torch.Tensor:
        """The loss term of this module's last forward pass."""
        raise NotImplementedError
