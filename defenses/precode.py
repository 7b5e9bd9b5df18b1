"""PRECODE (Scheliga et al., WACV 2022): a variational bottleneck before the classifier.

The model's classifier input (dimension F) is encoded to the mean and log-variance of a
K-dimensional Gaussian, a sample z of it is decoded back to F dimensions and classified. The
training loss adds ``beta * KL(q(z|x) || N(0, I))``. Sampling happens whenever the user
computes a gradient; the server's view of the model (eval mode) uses the mean. The model
factory applies this wrapper for training and attacks alike, so both see the same
architecture. The ratio is beta (the DGP code: K = 256, beta = 1e-3).
"""

from __future__ import annotations

import torch
from torch import nn

from defenses.base import Defense


class VariationalBottleneck(nn.Module):
    """F -> (mu, log-variance) in K -> sample -> F; remembers the KL term of its last call."""

    samples_in_training = True

    def __init__(self, features: int, size: int, beta: float) -> None:
        super().__init__()
        self.encoder = nn.Linear(features, 2 * size)
        self.decoder = nn.Linear(size, features)
        self.size = size
        self.beta = beta
        self.kl = torch.zeros(())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mu, log_var = self.encoder(x).split(self.size, dim=1)
        if self.training:
            z = mu + torch.randn_like(mu) * torch.exp(0.5 * log_var)
        else:
            z = mu
        self.kl = 0.5 * (mu.pow(2) + log_var.exp() - log_var - 1).sum(1).mean()
        return self.decoder(z)

    def penalty(self) -> torch.Tensor:
        """The loss term this module adds: beta times the KL of its last forward pass."""
        return self.beta * self.kl


class Precode(Defense):
    name = "precode"
    family = "model"
    ratio_meaning = "beta, the weight of the bottleneck's KL term (K = params.size)"
    defaults = {"size": 256}

    @classmethod
    def ratio_error(cls, ratio, params):
        if int(params["size"]) != params["size"] or params["size"] < 1:
            return f"precode parameter size (K) must be a positive integer, got {params['size']}"
        if ratio < 0:
            return f"defense {cls.name!r} needs ratio (beta) >= 0, got {ratio}"
        return None

    def wrap_model(self, model: nn.Module) -> nn.Module:
        if not isinstance(getattr(model, "fc", None), nn.Linear):
            raise ValueError("precode needs a model whose classifier is a Linear layer 'fc'")
        bottleneck = VariationalBottleneck(model.fc.in_features, int(self.params["size"]),
                                           self.ratio)
        model.fc = nn.Sequential(bottleneck, model.fc)
        return model
