"""Defense-aware attacks: match only what the defense transmitted.

A server that receives a pruned gradient also receives the positions of the sent values
(the index set). A passive attacker matches the zeros too, as if the model's gradient were
zero there; this one compares the candidate's gradient with the shared one on the sent
coordinates only, which is how adaptive attacks bypass pruning defenses (DGP included).
Dense defenses (none, noise) are matched as by the passive attack.
"""

from __future__ import annotations

import torch

from attacks.base import AttackTarget
from attacks.dlg import ImprovedDeepLeakage
from attacks.inverting_gradients import InvertingGradients


def sent_coordinates(candidate: list[torch.Tensor], target: AttackTarget) -> list[torch.Tensor]:
    """The candidate gradient with every coordinate the defense did not send set to zero."""
    return [c if m is None else c * m.to(c.device)
            for c, m in zip(candidate, target.shared.masks, strict=True)]


class AdaptiveInvertingGradients(InvertingGradients):
    name = "ig_adaptive"

    def matching_loss(self, candidate, observed, target):
        return super().matching_loss(sent_coordinates(candidate, target), observed, target)


class AdaptiveImprovedDeepLeakage(ImprovedDeepLeakage):
    name = "idlg_adaptive"

    def matching_loss(self, candidate, observed, target):
        return super().matching_loss(sent_coordinates(candidate, target), observed, target)
