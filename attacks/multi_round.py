"""Decoding across rounds: the server watches one user train on the same images over
several rounds and combines what each round reveals.

A data defense (MixUp, InstaHide, ATS) draws fresh partners, coefficients, sign flips or
transformations every round, but the user's own image is in every round's update. Carlini
et al. ("Is Private Learning Possible with Instance Encoding?", S&P 2021) break InstaHide
this way: many encodings of the same private image, decoded jointly; GradAttack's
``examples/attack_decode.py`` decodes images inverted from gradients over epochs the same
way. Here each round's update is inverted on its own by the defense-aware iDLG
(``idlg_adaptive``: the image the round's update was computed on, e.g. the mixed and
sign-flipped one), its soft targets are read from the round's classifier bias gradient, and
the defense combines the rounds into one estimate of the user's image
(``Defense.estimate_private_rounds``: MixUp's linear MMSE unmixing over all rounds,
InstaHide's unflipping refined with the joint estimate; by default the mean of the rounds'
estimates).

Ours differs from GradAttack's decode on purpose: it hands its attacker every round's
mixing coefficients and partner assignment (an upper bound, as its comments say) and fits
all private images at once by Adam on the unexplained variance; ours reads the coefficients
from each round's bias gradient, stands in the public class means for the unknown partners,
and solves in closed form per user. Like both references it knows which rounds hold the
image (the same user's batch in every round: a server that tracks a user).
"""

from __future__ import annotations

from dataclasses import replace

from attacks.adaptive import AdaptiveImprovedDeepLeakage, shared_soft_targets
from dgp.attack import Attack, AttackTarget, Reconstruction, label_rule
from dgp.defense import Defense
from dgp.lazy import torch
from dgp.params import Param
from dgp.protocol import Protocol

# A round's inversion fits when its objective is at most this many times the best round's
# (or than FIT_FLOOR, for exact fits whose objectives are rounding noise).
FIT_RATIO = 100.0
FIT_FLOOR = 1e-6


class MultiRoundDecode(Attack):
    name = "multi_round"
    parameters = {
        "rounds": Param(8, int, low=2, doc="rounds of the user's updates on its images observed"),
        "iterations": Param(20, int, low=1, doc="L-BFGS steps per round's inversion"),
        "restarts": Param(2, int, low=1, doc="random starts per round; the lowest objective wins"),
        "label_rule": label_rule("auto"),
    }
    example_params = {"rounds": 2, "iterations": 2}

    @classmethod
    def defense_error(cls, defense: type[Defense]) -> str | None:
        """Only a data defense draws afresh what each round's update shows of the same
        image; the others' rounds add nothing one round's inversion has not (and the noise
        defenses' accounting is per release, so averaging releases is outside it)."""
        if defense.family == "data":
            return None
        return (f"attack {cls.name!r} combines rounds of a data-transform defense (ats, mixup, "
                f"instahide); {defense.name!r} is a {defense.family} defense")

    @property
    def observed_rounds(self) -> int:
        return self.params["rounds"]

    def knowledge(self, defense: Defense | None, protocol: Protocol,
                  num_images: int) -> list[str]:
        """The defense-aware iDLG's, and several rounds of the same user."""
        return [*self._inverter().knowledge(defense, protocol, num_images), "several rounds"]

    def reconstruct(self, target: AttackTarget,
                    generator: torch.Generator | None = None) -> Reconstruction:
        """Each round inverted, then the defense's estimate from the rounds it fits (without
        a defense or public knowledge, the first round's reconstruction). A round fits when
        its inversion finished with a matching objective within ``FIT_RATIO`` of the best
        round's: a stalled inversion (what the server sees in its objective) would only add
        noise. The run diverged only if every round did."""
        inverter = self._inverter()
        rounds = [replace(target, shared=shared, later_rounds=())
                  for shared in (target.shared, *target.later_rounds)]
        results = [inverter.reconstruct_shared(r, generator) for r in rounds]
        finished = [(r, result) for r, result in zip(rounds, results, strict=True)
                    if result.status == "ok"]
        best = min((result.loss for _, result in finished), default=0.0)
        finished = [(r, result) for r, result in finished
                    if result.loss <= FIT_RATIO * max(best, FIT_FLOOR)]
        steps = sum(result.iterations for result in results)
        if not finished or target.defense is None or target.public is None:
            first = results[0]
            return replace(first, iterations=steps, checkpoints={})
        images = torch.stack([result.images for _, result in finished])
        targets = torch.stack([shared_soft_targets(r, result.images, result.labels)
                               for r, result in finished])
        estimate = target.defense.estimate_private_rounds(images, targets, target.public)
        lower, upper = (b.to(estimate.device) for b in target.box)
        loss = sum(result.loss for _, result in finished) / len(finished)
        return Reconstruction(torch.maximum(torch.minimum(estimate, upper), lower),
                              targets.mean(0).argmax(-1), "ok", loss, steps)

    def _inverter(self) -> AdaptiveImprovedDeepLeakage:
        return AdaptiveImprovedDeepLeakage(
            iterations=self.params["iterations"], restarts=self.params["restarts"],
            label_rule=self.params["label_rule"])
