"""Label inference from the classifier's gradient, as in breaching's label strategies.

With cross-entropy and non-negative features (sigmoid or ReLU before the last linear
layer), the row of the classifier's weight gradient that belongs to a label in the batch
has negative entries, every other row only positive ones.

* one image: iDLG (Zhao et al. 2020; breaching's ``iDLG``): the row with the smallest sum;
* a batch: Yin et al. 2021 (breaching's ``yin``): rows ranked by their *minimum* entry, the
  ``batch_size`` smallest taken (distinct labels; repeated cyclically when the batch is
  larger than the class count). A row's sum mixes the negative contributions of its own
  images with the positive ones of every other image, so ranking by sums misses labels
  that the minimum still shows.

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


def infer_labels(gradients: list[torch.Tensor], batch_size: int, num_classes: int,
                 rule: str = "auto") -> torch.Tensor:
    """Labels by ``rule``: ``idlg`` (row sums), ``yin`` (row minima) or ``auto`` (iDLG's
    for one image, Yin's for a batch; see the module docstring)."""
    rows = classifier_gradient(gradients, num_classes)
    if rule == "auto":
        rule = "idlg" if batch_size == 1 else "yin"
    scores = rows.sum(dim=1) if rule == "idlg" else rows.min(dim=1).values
    order = torch.argsort(scores, stable=True)
    return order[: min(batch_size, num_classes)].repeat(batch_size)[:batch_size].clone()
