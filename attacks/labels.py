"""Label inference from the classifier's gradient (iDLG; Yin et al. for batches).

With cross-entropy and non-negative features, the row of the last linear layer's weight
gradient that belongs to a true label sums to a negative number, every other row to a
positive one. For a batch, the ``batch_size`` most negative rows are taken (distinct labels).
Defenses that remove or perturb those entries make this inference fail, as they should.
"""

from __future__ import annotations

import torch


def classifier_gradient(gradients: list[torch.Tensor], num_classes: int) -> torch.Tensor:
    """The last 2-D gradient tensor with one row per class."""
    for g in reversed(gradients):
        if g.ndim == 2 and g.shape[0] == num_classes:
            return g
    raise ValueError(f"no classifier weight gradient with {num_classes} rows in the model")


def infer_labels(gradients: list[torch.Tensor], batch_size: int, num_classes: int) -> torch.Tensor:
    row_sums = classifier_gradient(gradients, num_classes).sum(dim=1)
    order = torch.argsort(row_sums, stable=True)
    return order[: min(batch_size, num_classes)].repeat(batch_size)[:batch_size].clone()
