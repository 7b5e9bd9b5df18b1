"""Exact magnitude-rank bands, shared by the pruning defenses.

Counts are per tensor and rounded to the nearest integer (halves up), so ``dgp`` and ``topk``
at the same ratio send exactly the same number of values from every tensor.
"""

from __future__ import annotations

import math

import torch


def sent_count(numel: int, ratio: float) -> int:
    """Number of entries a pruning defense sends from a tensor of ``numel`` entries."""
    return min(numel, math.floor((1.0 - ratio) * numel + 0.5))


def rank_band_mask(tensor: torch.Tensor, skip_top: int, keep: int) -> torch.Tensor:
    """Boolean mask of the entries ranked ``skip_top`` .. ``skip_top + keep - 1`` by |value|.

    Rank 0 is the largest magnitude; ties are broken by ``torch.topk``'s order, so the count
    is always exact.
    """
    flat = tensor.detach().abs().flatten()
    mask = torch.zeros(flat.numel(), dtype=torch.bool, device=tensor.device)
    if keep > 0:
        order = torch.topk(flat, skip_top + keep, sorted=True).indices
        mask[order[skip_top:]] = True
    return mask.view_as(tensor)


def prune_ratio_error(name: str, ratio: float, low: float = 0.0) -> str | None:
    if not low <= ratio < 1.0:
        return f"defense {name!r} needs {low:g} <= ratio < 1 (fraction not sent), got {ratio}"
    return None
