"""Soteria (Sun et al., CVPR 2021): prune the representation layer's gradient where a small
change of the representation would move the reconstruction most.

The representation r is the input of the final Linear layer (the classifier). For each
feature f, over the user's batch, Soteria's code scores ``sum_i ||d r_if / d x_i|| / |r_if|``
and keeps only the features whose score reaches the ``ratio`` quantile: the columns of the
classifier's weight gradient for the other features (the fraction ``ratio``, 0.8 in the DGP
code) are zeroed. Every other tensor is sent unchanged.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from dgp.defense import Defense
from dgp.lazy import torch
from dgp.types import SharedGradient, UserBatch, dense

if TYPE_CHECKING:
    from torch import nn

FEATURE_CHUNK = 64  # features per batched backward pass (bounds memory)


def classifier(model: nn.Module) -> nn.Linear:
    """The model's final Linear layer, whose input is the representation."""
    linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    if not linears:
        raise ValueError("soteria needs a model with a final Linear layer")
    return linears[-1]


def feature_scores(model: nn.Module, inputs: torch.Tensor) -> torch.Tensor:
    """Soteria's score per representation feature (lower = pruned first)."""
    layer = classifier(model)
    captured: list[torch.Tensor] = []
    hook = layer.register_forward_hook(lambda module, args, out: captured.append(args[0]))
    buffers = {name: b.clone() for name, b in model.named_buffers()}
    x = inputs.detach().clone().requires_grad_(True)
    try:
        model(x)
        features = captured[0]  # [N, F]
        count = features.shape[1]
        norms = []
        for start in range(0, count, FEATURE_CHUNK):
            stop = min(start + FEATURE_CHUNK, count)
            selector = torch.zeros(stop - start, *features.shape, device=features.device)
            selector[torch.arange(stop - start), :, torch.arange(start, stop)] = 1.0
            grads, = torch.autograd.grad(features, x, selector, retain_graph=True,
                                         is_grads_batched=True)  # [chunk, N, C, H, W]
            norms.append(grads.flatten(2).norm(dim=2).T)  # [N, chunk]
    finally:
        hook.remove()
        with torch.no_grad():  # leave BatchNorm's running statistics as they were
            for name, b in model.named_buffers():
                b.copy_(buffers[name])
    jacobian_norms = torch.cat(norms, dim=1)
    return (jacobian_norms / (features.detach().abs() + 1e-12)).sum(0)


class Soteria(Defense):
    name = "soteria"
    family = "representation"
    ratio_meaning = "fraction of representation features pruned from the classifier gradient"
    example_ratio = 0.8

    @classmethod
    def ratio_error(cls, ratio, params):
        if not 0 <= ratio <= 1:
            return f"defense {cls.name!r} needs 0 <= ratio <= 1 (pruning rate), got {ratio}"
        return None

    def apply(self, gradients: list[torch.Tensor], generator: torch.Generator | None = None,
              batch: UserBatch | None = None) -> SharedGradient:
        if batch is None:
            raise ValueError("soteria needs the user's model and inputs")
        weight = classifier(batch.model).weight
        trainable = [p for p in batch.model.parameters() if p.requires_grad]
        position = next(i for i, p in enumerate(trainable) if p is weight)
        scores = feature_scores(batch.model, batch.inputs).to(gradients[position].device)
        pruned = torch.argsort(scores, stable=True)[:round(self.ratio * len(scores))]
        tensors = [g.clone() for g in gradients]
        tensors[position][:, pruned] = 0.0
        return dense(tensors)

    def attacker_view(self, candidate: list[torch.Tensor],
                      shared: SharedGradient) -> list[torch.Tensor]:
        """The pruned columns are visible (all zero) in the shared classifier gradient: a
        defense-aware attacker skips them."""
        view = list(candidate)
        for i in reversed(range(len(shared.tensors))):
            if shared.tensors[i].ndim == 2:  # the classifier weight: the last matrix
                kept = shared.tensors[i].ne(0).any(dim=0).to(candidate[i].device)
                view[i] = candidate[i] * kept
                break
        return view
