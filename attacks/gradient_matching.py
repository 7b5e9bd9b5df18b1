"""What every gradient-matching attack shares (DLG, iDLG, Inverting Gradients,
GradInversion and their defense-aware variants): the candidate images start as N(0, 1) noise
in the normalised space, the shared update is matched by simulating each candidate's update
under the job's protocol (any algorithm, summed over aggregated users, either BatchNorm
mode), and restarts from fresh noise compete by what the server can compute itself
(``dgp.attack.best_restart``: a diverged restart never wins). A subclass supplies one
restart's optimisation (``restart``)."""

from __future__ import annotations

from abc import abstractmethod

from dgp.attack import Attack, AttackTarget, Reconstruction, best_restart
from dgp.lazy import torch
from dgp.params import Param

RESTARTS = Param(1, int, low=1, doc="fresh random starts; the lowest objective wins")


class GradientMatching(Attack):
    algorithms = ("fedsgd", "fedavg")
    aggregates = True
    batchnorm_modes = ("eval", "train")

    def reconstruct(self, target: AttackTarget,
                    generator: torch.Generator | None = None) -> Reconstruction:
        """The best of ``restarts`` (1 where the attack declares none) runs; the kept
        restart's budget checkpoints are that restart's."""
        device = next(target.model.parameters()).device
        observed = [t.to(device) for t in target.shared.tensors]
        return best_restart(self.restart(target, observed, generator, index)
                            for index in range(self.params.get("restarts", 1)))

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
