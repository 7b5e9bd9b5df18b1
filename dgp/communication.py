"""Bytes on the wire for one shared gradient.

Dense: 32-bit floats for every entry. Sparse tensors are sent as their values plus an index
set, encoded per tensor in the smaller of
  * COO: one int32 index per sent value (4 bytes each), or
  * bitmap: one bit per entry of the tensor (ceil(n / 8) bytes).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from defenses.base import SharedGradient

FLOAT32_BYTES = 4
INDEX_BYTES = 4


def dense_bytes(tensors: list[torch.Tensor]) -> int:
    """Bytes for sending every entry as float32."""
    return FLOAT32_BYTES * sum(t.numel() for t in tensors)


def index_bytes(numel: int, sent: int) -> int:
    """Bytes of the cheaper index encoding (COO int32 or bitmap) for ``sent`` of ``numel``."""
    if sent == numel:
        return 0
    return min(INDEX_BYTES * sent, math.ceil(numel / 8))


@dataclass(frozen=True)
class Cost:
    dense_bytes: int
    sent_bytes: int
    sent_values: int

    @property
    def compression(self) -> float:
        """Dense bytes divided by sent bytes (higher means less traffic)."""
        return self.dense_bytes / self.sent_bytes if self.sent_bytes else math.inf


def shared_cost(shared: SharedGradient) -> Cost:
    """Communication cost of one user's shared gradient."""
    sent_bytes = 0
    sent_values = 0
    for tensor, mask in zip(shared.tensors, shared.masks, strict=True):
        numel = tensor.numel()
        sent = numel if mask is None else int(mask.sum())
        sent_values += sent
        sent_bytes += math.ceil(sent * shared.bits_per_value / 8) + index_bytes(numel, sent)
    return Cost(dense_bytes(shared.tensors), sent_bytes, sent_values)
