"""PRECODE's variational bottleneck, the layer ``defenses.precode`` puts before the
classifier (see there for the reference it follows). Apart from the defense's module so
that reading its declarations imports no torch."""

from __future__ import annotations

import math

import torch
from torch import nn

from dgp.penalty import PenalizedModule


class VariationalBottleneck(PenalizedModule):
    """F -> (mu, softplus std) in K -> sample -> F; remembers the KL term of its last call."""

    def __init__(self, features: int, size: int, beta: float, kl_unit: str = "bits") -> None:
        super().__init__()
        self.encoder = nn.Linear(features, 2 * size)
        self.decoder = nn.Linear(size, features)
        self.size = size
        self.beta = beta
        self.kl_unit = kl_unit
        self.kl = torch.zeros(())
        # The standard normal draw of the sample, when fixed (``Precode.reproducible_model``:
        # read off a user's update); None: a fresh draw on every forward pass.
        self.noise: torch.Tensor | None = None

    def statistics(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The Gaussian's mean and (softplus) standard deviation for input ``x``."""
        encoded = self.encoder(x)
        return encoded[:, :self.size], nn.functional.softplus(encoded[:, self.size:])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mu, std = self.statistics(x)
        noise = torch.randn_like(std) if self.noise is None else self.noise.expand_as(std)
        z = mu + noise * std
        kl = -0.5 * (1 + 2 * std.log() - mu.pow(2) - std.pow(2)).sum(1).mean()
        self.kl = kl / math.log(2) if self.kl_unit == "bits" else kl
        return self.decoder(z)

    def penalty(self) -> torch.Tensor:
        """The loss term this module adds: beta times the KL of its last forward pass."""
        return self.beta * self.kl
