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

Both take distinct labels. Two rules also count repeated labels:

* ``llg``: LLG (Wainakh et al. 2022, the authors' ``v1`` predictor): every class whose row
  sum is negative is in the batch; the mean "impact" of one image, (sum of the negative row
  sums / batch size) x (1 + 1/K), is taken off each found class, then the most negative
  class is taken again (and its impact taken off) until the batch is full;
* ``bias``: the classifier's bias gradient is mean_i softmax_i - mean_i y_i, so the batch's
  label counts are B (mean prediction - bias gradient); the mean prediction is the model's
  on the public class means (the server's public data; uniform without it), the counts
  rounded to B by largest remainder (one-shot label restoration, Geng et al. 2021, with
  public data instead of dummies).

``oracle`` (an upper bound, not an attack: the server is handed the true labels) is the
threat model in which labels are known; ``LABEL_RULES`` lists every rule by name.

Label-mixing defenses (MixUp, InstaHide) train on soft labels, which the classifier's bias
gradient reveals once the image is reconstructed (``soft_targets``).
"""

from __future__ import annotations

import torch
from torch import nn


def _classifier_index(gradients: list[torch.Tensor], num_classes: int) -> int:
    for i in reversed(range(len(gradients))):
        if gradients[i].ndim == 2 and gradients[i].shape[0] == num_classes:
            return i
    raise ValueError(f"no classifier weight gradient with {num_classes} rows in the model")


def classifier_gradient(gradients: list[torch.Tensor], num_classes: int) -> torch.Tensor:
    """The last 2-D gradient tensor with one row per class."""
    return gradients[_classifier_index(gradients, num_classes)]


def classifier_bias_gradient(gradients: list[torch.Tensor],
                             num_classes: int) -> torch.Tensor | None:
    """The classifier's bias gradient (the 1-D tensor of ``num_classes`` entries right
    after its weight), or None when the classifier has no bias."""
    i = _classifier_index(gradients, num_classes) + 1
    if i < len(gradients) and gradients[i].shape == (num_classes,):
        return gradients[i]
    return None


def soft_targets(model: nn.Module, images: torch.Tensor, gradients: list[torch.Tensor],
                 labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """The targets [N, num_classes] the shared gradient was computed on, given
    reconstructed ``images``.

    For one image under mean-reduced cross-entropy the bias gradient is softmax(logits) - y,
    so y = softmax(model(image)) - bias gradient (clamped at 0, renormalised): exact for the
    true image, and close for a rough one while the model is far from confident. A batch's
    bias gradient holds only the batch's mean target, which does not say whose mass is
    whose: a batch, or a model without a classifier bias, keeps the one-hot ``labels``.
    """
    onehot = nn.functional.one_hot(labels.long(), num_classes).float().to(images.device)
    bias = classifier_bias_gradient(gradients, num_classes)
    if bias is None or len(images) != 1:
        return onehot
    with torch.no_grad():
        targets = (model(images).softmax(-1) - bias.to(images.device)).clamp(min=0)
    total = targets.sum(-1, keepdim=True)
    return torch.where(total > 0, targets / total.clamp(min=1e-12), onehot)


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


def llg_labels(gradients: list[torch.Tensor], batch_size: int,
               num_classes: int) -> torch.Tensor:
    """LLG's batch labels with repeats (module docstring)."""
    sums = classifier_gradient(gradients, num_classes).sum(dim=1).detach().clone()
    found = torch.nonzero(sums < 0).flatten()
    found = found[torch.argsort(sums[found], stable=True)][:batch_size]
    impact = sums[sums < 0].sum() / batch_size * (1 + 1 / num_classes)
    labels = found.tolist()
    sums[found] -= impact
    while len(labels) < batch_size:
        label = int(torch.argmin(sums))
        labels.append(label)
        sums[label] -= impact
    return torch.tensor(labels, dtype=torch.long)


def bias_labels(gradients: list[torch.Tensor], batch_size: int, num_classes: int,
                mean_prediction: torch.Tensor) -> torch.Tensor:
    """Batch label counts from the classifier's bias gradient (module docstring)."""
    bias = classifier_bias_gradient(gradients, num_classes)
    if bias is None:
        raise ValueError("the 'bias' label rule needs a classifier with a bias")
    counts = (batch_size * (mean_prediction.to(bias.device) - bias.detach())).clamp(min=0)
    if float(counts.sum()) == 0:
        counts = torch.ones_like(counts)
    counts = counts * batch_size / counts.sum()
    whole = counts.floor()
    missing = batch_size - int(whole.sum())
    whole[torch.argsort(counts - whole, descending=True, stable=True)[:missing]] += 1
    return torch.repeat_interleave(torch.arange(num_classes), whole.long().cpu())


def mean_prediction(model: nn.Module, class_means: torch.Tensor | None,
                    num_classes: int) -> torch.Tensor:
    """The model's mean softmax over the public class means (uniform without them)."""
    if class_means is None:
        return torch.full((num_classes,), 1 / num_classes)
    device = next(model.parameters()).device
    with torch.no_grad():
        return model(class_means.to(device)).softmax(-1).mean(0).cpu()


LABEL_RULES = ("auto", "idlg", "yin", "llg", "bias", "oracle")


def recover_labels(rule: str, gradients: list[torch.Tensor], batch_size: int,
                   num_classes: int, model: nn.Module | None = None,
                   class_means: torch.Tensor | None = None,
                   oracle: torch.Tensor | None = None) -> torch.Tensor:
    """The batch's labels by ``rule`` (one of ``LABEL_RULES``)."""
    if rule == "oracle":
        if oracle is None:
            raise ValueError("the 'oracle' label rule needs the true labels in the target")
        return oracle.clone()
    if rule == "llg":
        return llg_labels(gradients, batch_size, num_classes)
    if rule == "bias":
        prediction = mean_prediction(model, class_means, num_classes)
        return bias_labels(gradients, batch_size, num_classes, prediction)
    return infer_labels(gradients, batch_size, num_classes, rule)
