"""Defense-aware attacks: the server knows the defense's protocol and models it.

Every gradient-matching attack has a defense-aware variant (``dlg_adaptive``,
``idlg_adaptive``, ``ig_adaptive``, ``gradinversion_adaptive``), generic over the protocol
each defense declares on ``Defense``:

* ``attacker_view``: the candidate gradient as the server would observe it, without the
  defense's random draws. Pruning defenses: only the sent coordinates (the server receives
  their positions; a passive attacker also matches the zeros, as if the true gradient were
  zero there), rescaled as ``random`` rescales. Noise defenses: the candidate clipped to the
  public ``clip_norm`` as the user's was, so clipping, a public invertible rescaling, earns
  the defense nothing. Soteria: its zeroed classifier columns skipped.
* ``observation_nll``: for noise defenses, the observation's negative log-likelihood per
  entry (Gaussian: squared error over 2 sigma^2; Laplace: absolute error over b), which
  replaces the attack's own distance, so its prior takes over as the noise grows.
* ``constraint_penalty``: what the protocol reveals about the unsent entries (DGP: the
  ``top`` largest of each tensor lie above the largest sent magnitude, the rest below the
  smallest; top-k: all below the smallest), a hinge penalty weighted by ``band_weight``.
  Under aggregation (``Protocol.users > 1``) the penalty is left out: the bands hold for
  each user's own update, not for the sum, whose sent positions are every user's.
* ``aggregate_view``: under aggregation, each candidate user's update as its defense lets
  it through before the sum is formed: where the sent positions follow from the user's own
  update (dgp, topk) they are recomputed from the candidate; otherwise ``attacker_view``
  at the sum's positions (exact for an aligned band). Noise likelihoods keep one user's
  scale (the sum's noise is sqrt(N) larger: a constant factor of the objective).
* ``estimate_private``: for data-transform defenses, the attack reconstructs what was
  shared (the transformed image) and then, given public knowledge (``AttackTarget.public``),
  estimates the user's own image from it: MixUp unmixes with the soft labels read from the
  bias gradient (of the update scaled to one user's FedSGD gradient, ``mean_gradient``) and
  public class means, InstaHide first undoes its sign flips as far as
  public data tells their signs, ATS undoes its shifts. Applied to the final images and to
  every budget checkpoint; a changed estimate is kept inside the valid box.
* ``reproducible_model``: for defenses that draw randomness inside the model, the model
  with the user's draw fixed where the update reveals it (PRECODE's bottleneck noise, read
  off one image's FedSGD gradient: the Bayes framework's break), so candidate updates are
  computed as the user's was.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from typing import Any, ClassVar

from attacks.dlg import DeepLeakage, ImprovedDeepLeakage
from attacks.gradinversion import GradInversion
from attacks.inverting_gradients import InvertingGradients
from dgp.attack import AttackTarget, Reconstruction, UserView, mean_gradient
from dgp.defense import Defense
from dgp.labels import bias_implied_targets, soft_targets
from dgp.lazy import torch
from dgp.params import FloatRange, Param
from dgp.protocol import Protocol


def band_weight(default: float) -> Param:
    return Param(default, float, low=0, doc="weight of the defense's constraint penalty")


MASK_TEMPERATURE = Param(1.0, float, low=0, doc=(
    "soft band masks' starting temperature for a sum of users under a band defense (dgp, "
    "topk): annealed to 1/100 of it over the first half of the run, hard masks after; "
    "0: hard masks throughout"))
# What a tuning job searches of the defense model, on top of the passive attack's space: the
# penalty's weight and the soft masks' temperature, both linearly from 0 (off).
ADAPTIVE_SPACE = {"band_weight": FloatRange(0.0, 10.0), "mask_temperature": FloatRange(0.0, 4.0)}


class AnnealedBands(UserView):
    """Each candidate user's update as a sum-of-users attacker models it
    (``Defense.aggregate_view``). Where each user's band is recomputed from its own
    candidate update (dgp, topk), the hard masks give no gradient for an entry's way into or
    out of the band, and from a random start the attack stays at the guessing floor
    (docs/threat-models.md); so the first half of the run's
    steps use soft masks (``soft_band_mask``) whose temperature falls geometrically from
    ``temperature`` to 1/100 of it, the second half the exact hard ones. Counted in
    optimiser steps, not objective evaluations: L-BFGS spends a varying number of those per
    step, and within a step its objective must stay one function. The run's best iterate
    is chosen under the hard masks (``attacks.best_iterate``)."""

    def __init__(self, target: AttackTarget, temperature: float, steps: int):
        self.defense, self.shared = target.defense, target.shared
        self.start = temperature
        self.soft_steps = steps // 2 if temperature > 0 else 0
        self.temperature = temperature if self.soft_steps else 0.0  # of the current step

    def begin_step(self, step: int) -> None:
        """Step ``step`` (from 1) of the run: soft up to ``soft_steps``, hard after."""
        self.temperature = (self.start * 0.01 ** ((step - 1) / self.soft_steps)
                            if step <= self.soft_steps else 0.0)

    @property
    def phase(self) -> str:
        if not self.soft_steps:
            return ""
        return "soft" if self.temperature > 0 else "hard"

    @contextmanager
    def final(self) -> Iterator[None]:
        """The hard masks, whatever the step."""
        temperature, self.temperature = self.temperature, 0.0
        try:
            yield
        finally:
            self.temperature = temperature

    def __call__(self, update: list[torch.Tensor]) -> list[torch.Tensor]:
        return self.defense.aggregate_view(update, self.shared, self.temperature)


def shared_soft_targets(target: AttackTarget, images: torch.Tensor,
                        labels: torch.Tensor) -> torch.Tensor:
    """The soft targets a data defense trained reconstructed ``images`` on, read from the
    classifier bias's entry of the shared update (``soft_targets``). That reading assumes
    one user's FedSGD gradient: a FedAvg change is lr x steps larger (and a sum of users'
    updates N times), so the update is first scaled as the label rules scale it
    (``mean_gradient``: exact for one local step, a one-step equivalent for more)."""
    gradients = mean_gradient([t.to(images.device) for t in target.shared.tensors],
                              target.protocol)
    return soft_targets(target.model, images, gradients, labels, target.num_classes)


class _DefenseAware:
    """Replaces a passive attack's ``matching_loss`` by the defense-aware one above, and
    maps its reconstructions through the defense's ``estimate_private``. A variant declares
    only its name and ``band_weight_default``: its parameters are the passive attack's plus
    the band penalty's weight and the soft masks' temperature, searched by tuning too."""

    band_weight_default: ClassVar[float] = 1.0

    def __init_subclass__(cls, **kwargs: Any) -> None:
        cls.parameters = {**cls.parameters, "band_weight": band_weight(cls.band_weight_default),
                          "mask_temperature": MASK_TEMPERATURE}
        cls.tuning_space = {**cls.tuning_space, **ADAPTIVE_SPACE}
        super().__init_subclass__(**kwargs)

    def reconstruct_all(self, targets: Sequence[AttackTarget],
                        generators: Sequence[torch.Generator | None]) -> list[Reconstruction]:
        """The passive optimisation, then the defense's estimate of the user's images (its
        ``loss`` stays the objective of the reconstruction of what was shared). The model
        is the defense's ``reproducible_model``: any draw inside it the update reveals is
        fixed to the user's."""
        results = self.reconstruct_shared_all(targets, generators)
        for target, result in zip(targets, results, strict=True):
            if target.defense is None or target.public is None:
                continue
            result.images = self._estimate(result.images, result.labels, target)
            result.checkpoints = {fraction: self._estimate(images, result.labels, target)
                                  for fraction, images in result.checkpoints.items()}
        return results

    def reconstruct_shared(self, target: AttackTarget,
                           generator: torch.Generator | None = None) -> Reconstruction:
        """The passive optimisation on the defense's ``reproducible_model``: the images the
        shared update was computed on (for a data defense, the transformed ones)."""
        return self.reconstruct_shared_all([target], [generator])[0]

    def reconstruct_shared_all(self, targets: Sequence[AttackTarget],
                               generators: Sequence[torch.Generator | None],
                               ) -> list[Reconstruction]:
        """``reconstruct_shared`` for several targets (solved together where the passive
        attack can)."""
        return super().reconstruct_all([self._reproducible(t) for t in targets], generators)

    @staticmethod
    def _reproducible(target: AttackTarget) -> AttackTarget:
        if target.defense is None:
            return target
        return replace(target, model=target.defense.reproducible_model(
            target.model, list(target.shared.tensors), target.num_images, target.protocol))

    @staticmethod
    def _estimate(images: torch.Tensor, labels: torch.Tensor,
                  target: AttackTarget) -> torch.Tensor:
        """The defense's estimate of the user's images from reconstructed ``images``."""
        device = images.device
        targets = shared_soft_targets(target, images, labels)
        estimate = target.defense.estimate_private(images, targets, target.public)
        if estimate is images:  # the default: the attack's images as they were
            return images
        lower, upper = (b.to(device) for b in target.box)
        return torch.maximum(torch.minimum(estimate, upper), lower)

    def targets_follow_candidate(self, target: AttackTarget) -> bool:
        """Behind a label-mixing defense, one image's FedSGD candidate is simulated under
        the targets its own logits imply (``candidate_targets``)."""
        defense = target.defense
        return (defense is not None and defense.mixes_labels and target.protocol == Protocol()
                and not self.optimize_labels)

    def candidate_targets(self, target: AttackTarget, candidate: torch.Tensor,
                          labels: torch.Tensor) -> torch.Tensor:
        """Behind a label-mixing defense (``Defense.mixes_labels``), one image's candidate is
        simulated under the soft targets the shared update implies for it
        (``bias_implied_targets``): hard labels cannot reproduce a mixed-label gradient, so
        the mixed image itself would never be matched. A batch, a sum or a FedAvg update
        keeps the recovered labels, and DLG its optimised soft labels (which model mixed
        targets already)."""
        if not self.targets_follow_candidate(target):
            return labels
        implied = bias_implied_targets(list(target.shared.tensors), target.num_classes,
                                       target.num_images)
        return labels if implied is None else implied

    def knowledge(self, defense: Defense | None, protocol: Protocol,
                  num_images: int) -> list[str]:
        """The passive attack's, plus the defense's protocol, and public data where the
        defense transforms the data (its ``estimate_private`` reads the class means)."""
        known = super().knowledge(defense, protocol, num_images)
        if defense is None:
            return known
        if defense.estimate_reads_public_data and "public data" not in known:
            known.append("public data")
        return [*known, "defense protocol"]

    def inert_under(self, protocol: Protocol) -> set[str]:
        """The soft masks' temperature models a sum of users; the band penalty is left out
        of one (``matching_loss``)."""
        return {"mask_temperature"} if protocol.users == 1 else {"band_weight"}

    def user_view(self, target: AttackTarget, steps: int) -> UserView | None:
        """Under aggregation, each candidate user's update as its defense lets it through
        (``Defense.aggregate_view``), so that the sum is modelled user by user, through
        soft band masks over the first half of the run (``AnnealedBands``)."""
        if target.defense is None or target.protocol.users == 1:
            return None
        return AnnealedBands(target, self.params["mask_temperature"], steps)

    def matches_plainly(self, target: AttackTarget) -> bool:
        return target.defense is None

    def matching_loss(self, candidate: list[torch.Tensor], observed: list[torch.Tensor],
                      target: AttackTarget) -> torch.Tensor:
        defense = target.defense
        if defense is None:
            return super().matching_loss(candidate, observed, target)
        # A sum's candidate was viewed user by user already (user_view).
        view = (candidate if target.protocol.users > 1
                else defense.attacker_view(candidate, target.shared))
        loss = defense.observation_nll(view, target.shared)
        if loss is None:
            loss = super().matching_loss(view, observed, target)
        # The bands constrain each user's own unsent entries, not a sum's: under aggregation
        # only the sent positions (any user's) are modelled.
        if self.params["band_weight"] > 0 and target.protocol.users == 1:
            loss = loss + self.params["band_weight"] * defense.constraint_penalty(
                candidate, target.shared)
        return loss


class AdaptiveDeepLeakage(_DefenseAware, DeepLeakage):
    name = "dlg_adaptive"


class AdaptiveImprovedDeepLeakage(_DefenseAware, ImprovedDeepLeakage):
    name = "idlg_adaptive"


class AdaptiveInvertingGradients(_DefenseAware, InvertingGradients):
    name = "ig_adaptive"


class AdaptiveGradInversion(_DefenseAware, GradInversion):
    name = "gradinversion_adaptive"
    # The penalty is relative to the shared gradient's energy, like a Euclidean distance
    # over that energy: weighted by GradInversion's own matching scale (0.5 x 1e-4).
    band_weight_default = 0.5e-4
