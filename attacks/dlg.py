"""DLG, Deep Leakage from Gradients (Zhu et al., 2019), and iDLG (Zhao et al., 2020).

L-BFGS on the candidate images, minimising the Euclidean distance between their gradient and
the shared one. DLG optimises soft label logits jointly with the images and reports their
argmax; iDLG reads the label from the classifier's gradient first and optimises images only.
``iterations`` counts L-BFGS steps; each step evaluates the gradient up to
``max_evaluations`` times (torch's default 20), as in the reference code. ``restarts``
(default 1, the reference's) runs again from fresh random starts and keeps the run with the
lowest objective; its budget checkpoints are that run's.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from tqdm import tqdm

from attacks.best_iterate import BestIterate
from attacks.gradient_matching import RESTARTS, GradientMatching
from attacks.objectives import candidate_update, euclidean_distance
from dgp.attack import AttackTarget, Reconstruction, UserView, checkpoint_steps, label_rule
from dgp.lazy import torch
from dgp.optim import lbfgs
from dgp.params import FloatRange, Param


class DeepLeakage(GradientMatching):
    name = "dlg"
    parameters = {
        "iterations": Param(300, int, low=1, doc="L-BFGS steps"),
        "lr": Param(1.0, float, low=0, low_open=True, doc="L-BFGS step size"),
        "max_evaluations": Param(20, int, low=1, doc="objective evaluations per step"),
        "restarts": RESTARTS,
    }
    example_params = {"iterations": 2}
    # L-BFGS's step size, by its order of magnitude (above 1 it tends to diverge).
    tuning_space = {"lr": FloatRange(0.01, 2.0, log=True)}
    optimize_labels = True

    def restart(self, target: AttackTarget, observed: list[torch.Tensor],
                generator: torch.Generator | None, index: int) -> Reconstruction:
        """L-BFGS from a random start (it sometimes stalls in a poor local minimum; the
        server tells by the objective which restart to keep)."""
        variables, current_labels = self._variables(target, observed, generator)
        images = variables[0]
        view = self.user_view(target, steps=self.params["iterations"])

        def objective(candidate: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
            targets = self.candidate_targets(target, candidate, labels)
            return self.matching_loss(candidate_update(target, candidate, targets, view),
                                      observed, target)

        def held() -> tuple[torch.Tensor, torch.Tensor]:
            return images.detach().clone(), current_labels().detach().clone()

        # torch's L-BFGS evaluates the objective up to max_evaluations times per step and
        # returns the loss at the step's start, not at its end: the best iterate is kept
        # here, at every evaluation, paired with the images (and label targets) it was
        # evaluated at.
        best = BestIterate(view, lambda state: float(objective(*state).detach()), held())

        def evaluate() -> torch.Tensor:
            loss = objective(images, current_labels())
            best.offer(float(loss.detach()), held)
            return loss

        def closure() -> torch.Tensor:
            loss = evaluate()
            grads = torch.autograd.grad(loss, variables)
            for variable, grad in zip(variables, grads, strict=True):
                variable.grad = grad
            return loss

        status, steps, checkpoints = self._steps(variables, closure, view, best)
        if status == "ok":  # L-BFGS does not evaluate the end point of its last step
            evaluate()
        final = best.settle()
        found, targets = final.state
        labels = targets.argmax(-1) if self.optimize_labels else targets
        return Reconstruction(found, labels, status, final.loss, steps, checkpoints,
                              phase=final.phase)

    def _variables(self, target: AttackTarget, observed: list[torch.Tensor],
                   generator: torch.Generator | None,
                   ) -> tuple[list[torch.Tensor], Callable[[], torch.Tensor]]:
        """The optimised variables (random images, and DLG's label logits) and the label
        targets the objective reads (DLG: the logits' softmax; iDLG: the recovered labels)."""
        device = observed[0].device
        images = self.random_start(target, generator, device)
        if not self.optimize_labels:
            labels = self.recovered_labels(target, observed).to(device)
            return [images], lambda: labels
        logits = torch.randn(target.num_images, target.num_classes,
                             generator=generator).to(device).requires_grad_(True)
        return [images, logits], lambda: logits.softmax(-1)

    def _steps(self, variables: list[torch.Tensor], closure: Callable[[], torch.Tensor],
               view: UserView | None, best: BestIterate,
               ) -> tuple[str, int, dict[float, torch.Tensor]]:
        """The L-BFGS steps: "ok" or "diverged", the steps taken, and the best images
        after each budget fraction. An annealed view moves on once per step (the objective
        stays one function within a step, however many evaluations L-BFGS spends)."""
        optimizer = lbfgs(variables, lr=self.params["lr"],
                          max_iter=self.params["max_evaluations"])
        status, steps = "ok", 0
        marks, checkpoints = checkpoint_steps(self.params["iterations"]), {}
        for steps in tqdm(range(1, self.params["iterations"] + 1), desc=self.name,
                          leave=False, disable=None):
            if view is not None:
                view.begin_step(steps)
            loss = float(optimizer.step(closure).detach())
            if not (math.isfinite(loss) and all(torch.isfinite(v).all() for v in variables)):
                status = "diverged"
                break
            if steps in marks:
                checkpoints[marks[steps]] = best.settle().state[0]
        return status, steps, checkpoints

    def matching_loss(self, candidate: list[torch.Tensor], observed: list[torch.Tensor],
                      target: AttackTarget) -> torch.Tensor:
        """Passive matching: the whole shared gradient, zeros included."""
        return euclidean_distance(candidate, observed)


class ImprovedDeepLeakage(DeepLeakage):
    name = "idlg"
    optimize_labels = False
    parameters = {**DeepLeakage.parameters, "label_rule": label_rule("auto")}
