"""Defense-aware attacks: the server knows the defense's protocol and models it.

* Pruning defenses (dgp, adgp, topk, random): the server receives the positions of the sent
  values, so the candidate's gradient is compared with the shared one on the sent
  coordinates only (a passive attacker also matches the zeros, as if the true gradient were
  zero there). Against DGP it also knows what the unsent entries are: the ``top`` largest of
  each tensor lie above the largest sent magnitude, the rest below the smallest. A hinge
  penalty (``band_weight``) pulls the candidate's unsent entries into those two ranges,
  its largest ``top`` ones up, the others down.
* Noise defenses (dp_gaussian, dp_laplace): the candidate's gradient is clipped as the
  user's was and matched by the noise's negative log-likelihood per entry (squared error
  over 2 sigma^2 for Gaussian noise, absolute error over b for Laplace), so the prior
  takes over as the noise grows. Without noise (ratio 0) the passive matching is used on
  the clipped candidate.
* Any other defense: the passive attack's matching.
"""

from __future__ import annotations

import torch

from attacks.base import AttackTarget
from attacks.dlg import ImprovedDeepLeakage
from attacks.inverting_gradients import InvertingGradients
from defenses.dp_gaussian import GaussianNoise, clip_to_norm
from defenses.dp_laplace import LaplaceNoise
from defenses.dual_pruning import DualGradientPruning, top_drop_count


def sent_coordinates(candidate: list[torch.Tensor], target: AttackTarget) -> list[torch.Tensor]:
    """The candidate gradient with every coordinate the defense did not send set to zero."""
    return [c if m is None else c * m.to(c.device)
            for c, m in zip(candidate, target.shared.masks, strict=True)]


def band_penalty(candidate: list[torch.Tensor], target: AttackTarget) -> torch.Tensor:
    """How far the candidate's unsent entries are from DGP's dropped bands, relative to the
    shared gradient's energy (0 when they could be what DGP dropped)."""
    defense = target.defense
    total = candidate[0].new_zeros(())
    energy = sum(t.pow(2).sum() for t in target.shared.tensors) + 1e-12
    for c, shared, mask in zip(candidate, target.shared.tensors, target.shared.masks,
                               strict=True):
        if mask is None or bool(mask.all()) or not bool(mask.any()):
            continue
        mask = mask.to(c.device)
        sent = shared.to(c.device)[mask].abs()
        high, low = sent.max(), sent.min()
        unsent = c[~mask].abs()
        top = min(top_drop_count(c.numel(), defense.ratio, defense.params["p1"]), len(unsent))
        ranked = torch.sort(unsent, descending=True).values
        total = total + torch.relu(high - ranked[:top]).pow(2).sum()
        total = total + torch.relu(ranked[top:] - low).pow(2).sum()
    return total / energy


def noise_likelihood(candidate: list[torch.Tensor], observed: list[torch.Tensor],
                     target: AttackTarget) -> torch.Tensor | None:
    """Negative log-likelihood per entry of the observation given the candidate, for the
    noise defenses; None for any other defense or without noise."""
    defense = target.defense
    if not isinstance(defense, GaussianNoise | LaplaceNoise) or defense.ratio == 0:
        return None
    clip = defense.params["clip_norm"]
    scale = defense.ratio * clip
    residual = [c - o for c, o in zip(clip_to_norm(candidate, clip), observed, strict=True)]
    entries = sum(r.numel() for r in residual)
    if isinstance(defense, GaussianNoise):
        return sum(r.pow(2).sum() for r in residual) / (2 * scale**2 * entries)
    return sum(r.abs().sum() for r in residual) / (scale * entries)


class _DefenseAware:
    """Wraps a passive attack's ``matching_loss`` with the defense model described above."""

    def matching_loss(self, candidate, observed, target):
        likelihood = noise_likelihood(candidate, observed, target)
        if likelihood is not None:
            return likelihood
        defense = target.defense
        if isinstance(defense, GaussianNoise | LaplaceNoise):  # no noise: clipping only
            candidate = clip_to_norm(candidate, defense.params["clip_norm"])
        loss = super().matching_loss(sent_coordinates(candidate, target), observed, target)
        if isinstance(defense, DualGradientPruning) and self.params["band_weight"] > 0:
            loss = loss + self.params["band_weight"] * band_penalty(candidate, target)
        return loss


class AdaptiveInvertingGradients(_DefenseAware, InvertingGradients):
    name = "ig_adaptive"
    defaults = {**InvertingGradients.defaults, "band_weight": 1.0}


class AdaptiveImprovedDeepLeakage(_DefenseAware, ImprovedDeepLeakage):
    name = "idlg_adaptive"
    defaults = {**ImprovedDeepLeakage.defaults, "band_weight": 1.0}
