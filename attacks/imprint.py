"""The blocks active attacks put in front of the model they send (a malicious server):
Robbing the Fed's imprint block and trap weights' trap block. Each is a linear layer whose
rows an image activates, plus a residual path back to image shape, so the model still works.
Apart from the attacks' modules so that reading their declarations imports no torch.
"""

from __future__ import annotations

import math

import torch
from torch import nn


class ImprintBlock(nn.Module):
    """The imprint layer plus a residual path back to image shape."""

    def __init__(self, image_shape: tuple[int, ...], thresholds: torch.Tensor,
                 generator: torch.Generator) -> None:
        super().__init__()
        self.image_shape = tuple(image_shape)
        size = math.prod(self.image_shape)
        bins = len(thresholds)
        self.imprint = nn.Linear(size, bins)
        self.back = nn.Linear(bins, size, bias=False)
        with torch.no_grad():
            self.imprint.weight.fill_(1.0 / size)  # every bin measures the mean pixel value
            self.imprint.bias.copy_(-thresholds)
            column = torch.randn(size, 1, generator=generator) / math.sqrt(size * bins)
            self.back.weight.copy_(column.expand(size, bins))  # same column for every bin

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.flatten(1)
        return x + self.back(torch.relu(self.imprint(flat))).view(-1, *self.image_shape)


class TrapBlock(nn.Module):
    """The trap layer plus a residual path back to image shape (one column for all rows)."""

    def __init__(self, image_shape: tuple[int, ...], weight: torch.Tensor, bias: float,
                 column: torch.Tensor) -> None:
        super().__init__()
        self.image_shape = tuple(image_shape)
        rows, size = weight.shape
        self.trap = nn.Linear(size, rows)
        self.back = nn.Linear(rows, size, bias=False)
        with torch.no_grad():
            self.trap.weight.copy_(weight)
            self.trap.bias.fill_(bias)
            self.back.weight.copy_(column.view(size, 1).expand(size, rows))

    def activations(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.trap(x.flatten(1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.back(self.activations(x)).view(-1, *self.image_shape)
