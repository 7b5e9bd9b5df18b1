"""Defenses, chosen by config name. Adding one: a module here plus one registry line."""

from __future__ import annotations

from typing import Any

from defenses.aligned_dual_pruning import AlignedDualGradientPruning
from defenses.ats import TransformationPolicy
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
from dgp.defense import Defense

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

# The families defenses belong to (``Defense.family``), with what their ratio axis is: the
# report draws one row of panels per family. A new family is one line here.
FAMILIES: dict[str, str] = {
    "none": "no defense (ratio 0)",
    "pruning": "fraction of gradient entries not sent",
    "noise": "noise multiplier",
    "quantization": "bits per entry",
    "representation": "fraction of representation features pruned",
    "model": "KL weight beta",
    "data": "share of images transformed, or k images mixed",
}

__all__ = ["DEFENSES", "FAMILIES", "Defense", "create_defense"]


def create_defense(name: str, ratio: float, params: dict[str, Any] | None = None) -> Defense:
    """Build defense ``name`` at strength ``ratio``; unknown names raise a clear error."""
    if name not in DEFENSES:
        raise ValueError(f"unknown defense {name!r}; choose one of {', '.join(DEFENSES)}")
    return DEFENSES[name](ratio, **(params or {}))
