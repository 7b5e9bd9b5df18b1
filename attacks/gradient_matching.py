"""What every gradient-matching attack shares (DLG, iDLG, Inverting Gradients,
GradInversion and their defense-aware variants): the candidate images start as N(0, 1) noise
in the normalised space, the shared update is matched by simulating each candidate's update
under the job's protocol (any algorithm, summed over aggregated users, either BatchNorm
mode), and restarts from fresh noise compete by what the server can compute itself
(``dgp.attack.best_restart``: a diverged restart never wins).

Every restart of every target is one ``Problem``; ``solve`` runs a list of them. By default
one after another (a subclass supplies one restart's optimisation, ``restart``); an attack
whose optimiser is elementwise solves them as one batched problem (Inverting Gradients:
``attacks.batched_updates``), the same method per problem.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass

from dgp.attack import Attack, AttackTarget, Reconstruction, best_restart
from dgp.lazy import torch
from dgp.params import Param

RESTARTS = Param(1, int, low=1, doc="fresh random starts; the lowest objective wins")


@dataclass
class Problem:
    """One restart of one target: the target, its shared update on the model's device, the
    target's stream for random starts, and the restart's index."""

    target: AttackTarget
    observed: list[torch.Tensor]
    generator: torch.Generator | None
    index: int


class GradientMatching(Attack):
    algorithms = ("fedsgd", "fedavg")
    aggregates = True
    batchnorm_modes = ("eval", "train")

    def reconstruct(self, target: AttackTarget,
                    generator: torch.Generator | None = None) -> Reconstruction:
        return self.reconstruct_all([target], [generator])[0]

    def reconstruct_all(self, targets: Sequence[AttackTarget],
                        generators: Sequence[torch.Generator | None]) -> list[Reconstruction]:
        """Per target, the best of ``restarts`` (1 where the attack declares none) runs;
        the kept restart's budget checkpoints are that restart's."""
        restarts = self.params.get("restarts", 1)
        problems = [Problem(target, _observed(target), generator, index)
                    for target, generator in zip(targets, generators, strict=True)
                    for index in range(restarts)]
        runs = self.solve(problems)
        return [best_restart(runs[i:i + restarts]) for i in range(0, len(runs), restarts)]

    def solve(self, problems: list[Problem]) -> list[Reconstruction]:
        """One run per problem, in order; one after another by default, each restart's
        start drawn from its target's stream when the restart begins."""
        return [self.restart(p.target, p.observed, p.generator, p.index) for p in problems]

    def matches_plainly(self, target: AttackTarget) -> bool:
        """Whether ``matching_loss`` on ``target`` is the attack's own passive distance (no
        defense modelled): then problems may be matched all at once."""
        return True

    def targets_follow_candidate(self, target: AttackTarget) -> bool:
        """Whether ``candidate_targets`` on ``target`` may be a function of the candidate's
        logits rather than fixed labels (then its problems are solved one by one)."""
        return False

    @abstractmethod
    def restart(self, target: AttackTarget, observed: list[torch.Tensor],
                generator: torch.Generator | None, index: int) -> Reconstruction:
        """One run from a fresh random start (``random_start``) against ``observed``, the
        shared update on the model's device."""

    @staticmethod
    def random_start(target: AttackTarget, generator: torch.Generator | None,
                     device: torch.device) -> torch.Tensor:
        """Candidate images of N(0, 1) noise, the optimised leaf."""
        shape = (target.num_images, *target.image_shape)
        return torch.randn(shape, generator=generator).to(device).requires_grad_(True)


def _observed(target: AttackTarget) -> list[torch.Tensor]:
    device = next(target.model.parameters()).device
    return [t.to(device) for t in target.shared.tensors]
