"""Defenses, chosen by config name. Adding one: a module here plus one registry line."""

from __future__ import annotations

from typing import Any

from defenses.aligned_dual_pruning import AlignedDualGradientPruning
from defenses.ats import TransformationPolicy
from defenses.base import Defense
from defenses.dp_gaussian import GaussianNoise
from defenses.dp_laplace import LaplaceNoise
from defenses.dual_pruning import DualGradientPruning
from defenses.instahide import InstaHide
from defenses.mixup import MixUp
from defenses.none import NoDefense
from defenses.precode import Precode
from defenses.qsgd import QSGD
from defenses.random_sparsification import RandomSparsification
from defenses.soteria import Soteria
from defenses.topk import TopK

DEFENSES: dict[str, type[Defense]] = {
    "none": NoDefense,
    "dgp": DualGradientPruning,
    "adgp": AlignedDualGradientPruning,
    "topk": TopK,
    "random": RandomSparsification,
    "dp_gaussian": GaussianNoise,
    "dp_laplace": LaplaceNoise,
    "qsgd": QSGD,
    "soteria": Soteria,
    "precode": Precode,
    "ats": TransformationPolicy,
    "mixup": MixUp,
    "instahide": InstaHide,
}

__all__ = ["DEFENSES", "Defense", "create_defense"]


def create_defense(name: str, ratio: float, params: dict[str, Any] | None = None) -> Defense:
    """Build defense ``name`` at strength ``ratio``; unknown names raise a clear error."""
    if name not in DEFENSES:
        raise ValueError(f"unknown defense {name!r}; choose one of {', '.join(DEFENSES)}")
    return DEFENSES[name](ratio, **(params or {}))
