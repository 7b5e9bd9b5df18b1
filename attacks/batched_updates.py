"""The candidate updates of K independent gradient-matching problems in one computation.

Why: on the default case (LeNet, 16x16, one image) an attack iteration is a few small
matrix products, and running problems one after another spends the time launching them.
Here each problem's candidate update is what ``attacks.objectives.candidate_update`` gives
for it (the same protocol: FedSGD gradient or FedAvg local change, summed over aggregated
users, each user's update through the problem's own view), computed for all K problems at
once with ``torch.func`` (``vmap`` over ``grad`` of a ``functional_call``: opacus'
per-sample-gradient machinery, one level up). The problems' models are stacked (or shared,
when every problem attacks the same model object). The results stay differentiable w.r.t.
the candidate images through ordinary autograd, so each problem's own matching loss is
applied to its slice and the losses' sum has each problem's image gradient in its slice.

``batchable`` says which problems qualify: one protocol, one image count, models of one
architecture (class name, parameter and buffer names and shapes: a model loaded from
``torch.export`` gets a class of its own per load) without layers that draw randomness or
report penalties (PRECODE), which a vmapped call cannot keep apart per problem.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from dgp.attack import AttackTarget, UserView
from dgp.lazy import torch
from dgp.protocol import Protocol
from dgp.updates import functional_local_change

if TYPE_CHECKING:
    from torch import nn

def batchable(targets: Sequence[AttackTarget]) -> bool:
    """Whether ``targets``' candidate updates can be computed as one batched problem."""
    from dgp.penalty import PenalizedModule  # an nn.Module: not read by validation

    first = targets[0]
    shapes = _shapes(first.model)
    return all(t.protocol == first.protocol and t.num_images == first.num_images
               and t.batch_size == first.batch_size and _shapes(t.model) == shapes
               and type(t.model).__name__ == type(first.model).__name__
               and not any(isinstance(m, PenalizedModule) for m in t.model.modules())
               for t in targets)


def _shapes(model: nn.Module) -> list[tuple[str, tuple[int, ...], bool]]:
    return [(n, tuple(t.shape), getattr(t, "requires_grad", False))
            for n, t in [*model.named_parameters(), *model.named_buffers()]]


class BatchedUpdates:
    """``updates(images, targets)``: per problem, its candidate update (a list of tensors
    in parameter order), for images [K, N, C, H, W] and targets [K, N] (class indices) or
    [K, N, classes] (soft targets); ``views[k]`` (or None) applied to each of problem k's
    users' updates before their sum."""

    def __init__(self, targets: Sequence[AttackTarget],
                 views: Sequence[UserView | None]) -> None:
        self.protocol = targets[0].protocol
        self.model = targets[0].model
        self.views = list(views)
        self.users, self.batch_size = self.protocol.users, targets[0].batch_size
        self.trainable = [n for n, p in self.model.named_parameters() if p.requires_grad]
        models = [t.model for t in targets]
        shared = all(m is self.model for m in models)
        self.model_dim = None if shared else 0
        params = [{n: p.detach() for n, p in m.named_parameters()} for m in models]
        buffers = [dict(m.named_buffers()) for m in models]
        self.params = params[0] if shared else _stacked(params)
        # Per problem always: a BatchNorm in train mode updates them in place.
        self.buffers = _stacked(buffers)
        self.compute = torch.func.vmap(self._one_problem, in_dims=(self.model_dim, 0, 0, 0))

    def summed(self, images: torch.Tensor, targets: torch.Tensor) -> list[torch.Tensor]:
        """Without views: the problems' candidate updates stacked, each tensor [K, ...]."""
        return [sum(parts) for parts in zip(*self._per_user(images, targets), strict=True)]

    def updates(self, images: torch.Tensor, targets: torch.Tensor) -> list[list[torch.Tensor]]:
        per_user = self._per_user(images, targets)
        # unbind, not indexing: one backward node per tensor, not one full-size scatter
        # per problem (which is quadratic in K).
        slices = [[tensor.unbind(0) for tensor in update] for update in per_user]
        results = []
        for k, view in enumerate(self.views):
            users = [[tensor[k] for tensor in update] for update in slices]
            if view is not None:
                users = [view(update) for update in users]
            results.append([sum(parts) for parts in zip(*users, strict=True)])
        return results

    def _per_user(self, images: torch.Tensor,
                  targets: torch.Tensor) -> tuple[tuple[torch.Tensor, ...], ...]:
        """Per user, its update's tensors, each [K, ...]."""
        was_training = self.model.training
        # The mode as ``candidate_update`` sets it: the protocol's, except for a plain FedSGD
        # gradient, computed in the model's own mode (a ``torch.export`` model cannot switch).
        plain = self.protocol == Protocol() and not any(self.views)
        if not plain:
            self.model.train(self.protocol.batchnorm == "train")
        try:
            # Buffers cloned: the attacked model's running statistics must stay as sent.
            buffers = {n: b.clone() for n, b in self.buffers.items()}
            return self.compute(self.params, buffers, images, targets)
        finally:
            if not plain:
                self.model.train(was_training)

    def _one_problem(self, params: dict[str, torch.Tensor], buffers: dict[str, torch.Tensor],
                     images: torch.Tensor, targets: torch.Tensor,
                     ) -> tuple[tuple[torch.Tensor, ...], ...]:
        """One problem's per-user updates (run under ``vmap``)."""
        state = {**params, **buffers}
        size = self.batch_size
        return tuple(self._user_update(state, images[u * size:(u + 1) * size],
                                       targets[u * size:(u + 1) * size])
                     for u in range(self.users))

    def _user_update(self, state: dict[str, torch.Tensor], images: torch.Tensor,
                     targets: torch.Tensor) -> tuple[torch.Tensor, ...]:
        weights = tuple(state[n] for n in self.trainable)
        fixed = {n: t for n, t in state.items() if n not in self.trainable}
        if self.protocol.algorithm == "fedsgd":
            return torch.func.grad(self._loss)(weights, images, targets, fixed)
        return functional_local_change(self._loss, weights, images, targets, self.protocol,
                                       fixed)

    def _loss(self, weights: tuple[torch.Tensor, ...], images: torch.Tensor,
              targets: torch.Tensor, fixed: dict[str, torch.Tensor]) -> torch.Tensor:
        """The training loss (no model penalty: ``batchable`` excludes penalised models)
        with the model's tensors replaced; ``fixed`` (buffers, frozen parameters) is an
        argument so that a BatchNorm in train mode may update it."""
        state = {**dict(zip(self.trainable, weights, strict=True)), **fixed}
        logits = torch.func.functional_call(self.model, state, (images,))
        return torch.nn.functional.cross_entropy(logits, targets)


def _stacked(states: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    return {name: torch.stack([s[name] for s in states]) for name in states[0]}
