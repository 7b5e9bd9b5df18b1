"""Gradient defenses, chosen by config name. Adding one: a module here plus one registry line."""

from __future__ import annotations

from typing import Any

from defenses.aligned_dual_pruning import AlignedDualGradientPruning
from defenses.base import Defense, SharedGradient
from defenses.dp_gaussian import GaussianNoise
from defenses.dual_pruning import DualGradientPruning
from defenses.none import NoDefense
from defenses.topk import TopK

DEFENSES: dict[str, type[Defense]] = {
    "none": NoDefense,
    "dgp": DualGradientPruning,
    "adgp": AlignedDualGradientPruning,
    "topk": TopK,
    "dp_gaussian": GaussianNoise,
}

__all__ = ["DEFENSES", "Defense", "SharedGradient", "create_defense"]


def create_defense(name: str, ratio: float, params: dict[str, Any] | None = None) -> Defense:
    """Build defense ``name`` at strength ``ratio``; unknown names raise a clear error."""
    if name not in DEFENSES:
        raise ValueError(f"unknown defense {name!r}; choose one of {', '.join(DEFENSES)}")
    return DEFENSES[name](ratio, **(params or {}))
