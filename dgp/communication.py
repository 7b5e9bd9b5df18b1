"""Bytes on the wire, per user and direction.

Dense: 32-bit floats for every entry. Sparse tensors are sent as their values plus an index
set, encoded per tensor in the smaller of
  * COO: one int32 index per sent value (4 bytes each), or
  * bitmap: one bit per entry of the tensor (ceil(n / 8) bytes).
Quantized values cost their own width per entry, plus side information such as a per-tensor
scale (``SharedGradient.side_bytes``).
The entropy bound, log2(n choose k) bits per tensor, is the least any index encoding of a
k-of-n set can cost; it is reported beside the real encoding for reference.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from dgp.types import SharedGradient, summed

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


def index_entropy_bytes(numel: int, sent: int) -> float:
    """The information-theoretic minimum for naming ``sent`` positions out of ``numel``."""
    log2_choose = (math.lgamma(numel + 1) - math.lgamma(sent + 1)
                   - math.lgamma(numel - sent + 1)) / math.log(2)
    return max(log2_choose, 0.0) / 8


@dataclass(frozen=True)
class Cost:
    dense_bytes: int
    sent_bytes: int
    sent_values: int
    index_bytes: int  # part of sent_bytes spent on positions
    index_entropy_bytes: float  # lower bound for that part

    @property
    def compression(self) -> float:
        """Dense bytes divided by sent bytes (higher means less traffic)."""
        return self.dense_bytes / self.sent_bytes if self.sent_bytes else math.inf


def _cost(numels: list[int], sent_counts: list[int], bits_per_value: int,
          positions_known: bool, side_bytes: int = 0) -> Cost:
    value_bytes = sum(math.ceil(k * bits_per_value / 8) for k in sent_counts) + side_bytes
    if positions_known:
        positions, entropy = 0, 0.0
    else:
        positions = sum(index_bytes(n, k) for n, k in zip(numels, sent_counts, strict=True))
        entropy = sum(index_entropy_bytes(n, k)
                      for n, k in zip(numels, sent_counts, strict=True))
    return Cost(FLOAT32_BYTES * sum(numels), value_bytes + positions, sum(sent_counts),
                positions, entropy)


def _sent_counts(tensors: list[torch.Tensor], masks: list[torch.Tensor | None]) -> list[int]:
    return [t.numel() if m is None else int(m.sum())
            for t, m in zip(tensors, masks, strict=True)]


def shared_cost(shared: SharedGradient) -> Cost:
    """Upload cost of one user's shared gradient."""
    return _cost([t.numel() for t in shared.tensors], _sent_counts(shared.tensors, shared.masks),
                 shared.bits_per_value, shared.positions_known, shared.side_bytes)


def aggregate_cost(shared: list[SharedGradient]) -> Cost:
    """Download cost per user of the server's averaged update.

    Its support is the union of what the users sent (for aligned masks: the one mask), sent
    as float32 values plus the index set, or dense when that is cheaper.
    """
    first = shared[0]
    masks = summed(shared).masks  # the union, as a server under secure aggregation sees it
    numels = [t.numel() for t in first.tensors]
    sparse = _cost(numels, _sent_counts(first.tensors, masks), 32, positions_known=False)
    dense = _cost(numels, numels, 32, positions_known=False)
    return sparse if sparse.sent_bytes < dense.sent_bytes else dense
