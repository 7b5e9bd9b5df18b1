"""Gradient inversion attacks, chosen by config name. Adding one: a module plus one line."""

from __future__ import annotations

from typing import Any

from attacks.adaptive import (
    AdaptiveDeepLeakage,
    AdaptiveGradInversion,
    AdaptiveImprovedDeepLeakage,
    AdaptiveInvertingGradients,
)
from attacks.dlg import DeepLeakage, ImprovedDeepLeakage
from attacks.gradinversion import GradInversion
from attacks.inverting_gradients import InvertingGradients
from attacks.learned_inversion import LearnedInversion
from attacks.multi_round import MultiRoundDecode
from attacks.robbing_the_fed import RobbingTheFed
from attacks.trap_weights import TrapWeights
from dgp.attack import Attack, AttackTarget, Reconstruction

ATTACKS: dict[str, type[Attack]] = {
    "dlg": DeepLeakage,
    "dlg_adaptive": AdaptiveDeepLeakage,
    "idlg": ImprovedDeepLeakage,
    "idlg_adaptive": AdaptiveImprovedDeepLeakage,
    "ig": InvertingGradients,
    "ig_adaptive": AdaptiveInvertingGradients,
    "gradinversion": GradInversion,
    "gradinversion_adaptive": AdaptiveGradInversion,
    "learned_inversion": LearnedInversion,
    "multi_round": MultiRoundDecode,
    "rtf": RobbingTheFed,
    "trap_weights": TrapWeights,
}

__all__ = ["ATTACKS", "Attack", "AttackTarget", "Reconstruction", "create_attack"]


def create_attack(name: str, params: dict[str, Any] | None = None) -> Attack:
    """Build attack ``name``; unknown names raise a clear error."""
    if name not in ATTACKS:
        raise ValueError(f"unknown attack {name!r}; choose one of {', '.join(ATTACKS)}")
    return ATTACKS[name](**(params or {}))
