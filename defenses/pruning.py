"""Exact magnitude-rank bands, shared by the pruning defenses.

Counts are per tensor and rounded to the nearest integer (halves up), so ``dgp`` and ``topk``
at the same ratio send exactly the same number of values from every tensor.

Selection is exact without sorting: for a non-negative float32, the bit pattern read as an
int32 grows with the value, so a histogram over the top 16 bits of |g| finds the bucket that
holds each threshold rank in one counting pass; only that bucket's few entries are then
ranked exactly. Ties at a threshold are broken by position (lower index ranks higher).
Small or non-float32 tensors use ``torch.topk``, whose tie order is its own.
"""

from __future__ import annotations

import math

import torch

_HISTOGRAM_MIN_NUMEL = 1 << 16
_BUCKET_SHIFT = 16
_BUCKETS = 1 << (31 - _BUCKET_SHIFT)


def sent_count(numel: int, ratio: float) -> int:
    """Number of entries a pruning defense sends from a tensor of ``numel`` entries."""
    return min(numel, math.floor((1.0 - ratio) * numel + 0.5))


def rank_band_mask(tensor: torch.Tensor, skip_top: int, keep: int) -> torch.Tensor:
    """Boolean mask of the entries ranked ``skip_top`` .. ``skip_top + keep - 1`` by |value|.

    Rank 0 is the largest magnitude; the count is always exactly ``keep``.
    """
    flat = tensor.detach().abs().flatten()
    if keep <= 0:
        return torch.zeros_like(tensor, dtype=torch.bool)
    if flat.numel() < _HISTOGRAM_MIN_NUMEL or flat.dtype != torch.float32:
        mask = torch.zeros(flat.numel(), dtype=torch.bool, device=tensor.device)
        order = torch.topk(flat, skip_top + keep, sorted=True).indices
        mask[order[skip_top:]] = True
        return mask.view_as(tensor)
    return _histogram_band(flat, skip_top, keep).view_as(tensor)


class _RankedKeys:
    """Order-preserving int32 keys of |g| with a bucket histogram for rank queries."""

    def __init__(self, magnitudes: torch.Tensor) -> None:
        self.keys = magnitudes.view(torch.int32)
        self.buckets = self.keys >> _BUCKET_SHIFT
        counts = torch.bincount(self.buckets, minlength=_BUCKETS)
        self.above = counts.flip(0).cumsum(0).flip(0) - counts  # entries in higher buckets

    def key_at(self, rank: int) -> tuple[int, int, int]:
        """Key of the entry at descending ``rank``; how many keys exceed it; how many equal it."""
        bucket = int(torch.nonzero(self.above <= rank)[0])
        above = int(self.above[bucket])
        candidates = self.keys[self.buckets == bucket]
        ordered = torch.sort(candidates, descending=True).values
        key = int(ordered[rank - above])
        greater = above + int((candidates > key).sum())
        return key, greater, int((candidates == key).sum())


def _histogram_band(flat: torch.Tensor, skip_top: int, keep: int) -> torch.Tensor:
    ranked = _RankedKeys(flat)
    keys = ranked.keys
    first, last = skip_top, skip_top + keep - 1
    high, high_greater, high_ties = ranked.key_at(first)
    low, low_greater, low_ties = ranked.key_at(last)
    mask = (keys >= low) & (keys <= high)
    if high_ties == 1 and low_ties == 1:
        return mask  # no ties at either threshold: the inclusive range is exactly the band
    for key, greater, ties in {(high, high_greater, high_ties), (low, low_greater, low_ties)}:
        if ties > 1:
            positions = torch.nonzero(keys == key).flatten()  # index order breaks the tie
            ranks = greater + torch.arange(ties, device=keys.device)
            mask[positions] = (ranks >= first) & (ranks <= last)
    return mask


def prune_ratio_error(name: str, ratio: float, low: float = 0.0) -> str | None:
    if not low <= ratio < 1.0:
        return f"defense {name!r} needs {low:g} <= ratio < 1 (fraction not sent), got {ratio}"
    return None
