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

Two more count repeats with the public model's help:

* ``llg_plus``: LLG+ (Wainakh et al., "User-Level Label Leakage from Gradients in Federated
  Learning", PETS 2022; tklab-tud/LLG's ``v2`` predictor): LLG with its impact, and a
  per-class offset (the row sum a class gets from other classes' images, taken off every
  row once the negative rows are found), measured on the public model instead of read off
  the gradient. The authors average 10 batches of ``batch_size`` auxiliary images per
  class; we have one public image per class (its class mean, whose batch of copies has
  that one image's gradient), so one pass per class. Without public class means there is
  nothing to measure on (nor an input shape for dummies): it falls back to ``llg``;
* ``ilrg``: iLRG (Ma et al., "Instance-wise Batch Label Restoration via Gradients in
  Federated Learning", ICLR 2023; the authors' code, mankasto/iLRG's ``iLRG``): a class's
  mean embedding is its weight-gradient row over its bias-gradient entry, the classifier
  on it gives that class's mean probabilities P, and the counts n solve, by
  pseudo-inverse, sum n = B and B (bias gradient) = P^T n - n; then negatives are set to
  0, counts rounded, any above B dropped and the sum brought to B one count at a time
  where rounding moved most (the authors' ``mod_res``; their step can push a 0 to -1 or
  skip entries when the sum is short, ours cannot). It needs no public data (the
  embeddings come from the gradient), so it ignores the class means; without a model the
  probabilities are uniform (the authors' ``--estimate``), which reduces it to ``bias``
  without public data. It assumes a class's images share one embedding (and takes the
  softmax of the mean embedding for the mean softmax): close on an untrained model, the
  paper's easy case.

``oracle`` (an upper bound, not an attack: the server is handed the true labels) is the
threat model in which labels are known; ``LABEL_RULES`` lists every rule by name.

``auto``, the attacks' default: for one image the lone negative entry of the classifier's
bias gradient where there is exactly one (exact for any features; ``lone_negative_bias``),
else iDLG; for a batch (or a sum of users'
updates) ``llg_plus`` when the server has public class means, else Yin's rule. Breaching's
batch default is Yin's; ours differs on purpose, since the strongest attacker the suite has
should judge a defense and a wrong label stops a matching attack; ``bias`` reads the
classifier bias's largest entries, which pruning defenses drop. The measurements behind
both choices are in docs/attacks.md (``benchmarks/labels.py``, the label-recovery jobs).

Label-mixing defenses (MixUp, InstaHide) train on soft labels, which the classifier's bias
gradient reveals once the image is reconstructed (``soft_targets``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from dgp.gradients import parameter_gradients
from dgp.lazy import torch

if TYPE_CHECKING:
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
    onehot = torch.nn.functional.one_hot(labels.long(), num_classes).float().to(images.device)
    bias = classifier_bias_gradient(gradients, num_classes)
    if bias is None or len(images) != 1:
        return onehot
    with torch.no_grad():
        targets = (model(images).softmax(-1) - bias.to(images.device)).clamp(min=0)
    total = targets.sum(-1, keepdim=True)
    return torch.where(total > 0, targets / total.clamp(min=1e-12), onehot)


def bias_implied_targets(gradients: list[torch.Tensor], num_classes: int,
                         num_images: int) -> Callable[[torch.Tensor], torch.Tensor] | None:
    """For one image, the targets under which a candidate's gradient has exactly the shared
    classifier bias gradient, as a function of the candidate's logits: softmax(logits) -
    bias (``soft_targets`` unclamped), so that an attacker matching a soft-target update
    (MixUp's mixed labels) simulates each candidate under the targets it implies. They are
    constants of the candidate's update, as the user's targets were of its gradient (each
    evaluation sets them afresh from the candidate; left attached, the update would also
    differentiate through them and differ from the user's even at the true image). None for
    a batch or a model without a classifier bias."""
    bias = classifier_bias_gradient(gradients, num_classes)
    if bias is None or num_images != 1:
        return None
    return lambda logits: (logits.softmax(-1) - bias.to(logits.device)).detach()


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


def llg_labels(gradients: list[torch.Tensor], batch_size: int, num_classes: int,
               impact: float | None = None,
               offset: torch.Tensor | None = None) -> torch.Tensor:
    """LLG's batch labels with repeats (module docstring); ``impact`` and ``offset`` are
    LLG+'s, measured on public data (``public_impact``), else LLG's estimate from the
    gradient and no offset."""
    sums = classifier_gradient(gradients, num_classes).sum(dim=1).detach().clone()
    found = torch.nonzero(sums < 0).flatten()
    found = found[torch.argsort(sums[found], stable=True)][:batch_size]
    if impact is None:
        impact = float(sums[sums < 0].sum()) / batch_size * (1 + 1 / num_classes)
    if offset is not None:
        sums -= offset.to(sums)
    labels = found.tolist()
    sums[found] -= impact
    while len(labels) < batch_size:
        label = int(torch.argmin(sums))
        labels.append(label)
        sums[label] -= impact
    return torch.tensor(labels, dtype=torch.long)


def public_impact(model: nn.Module, class_means: torch.Tensor,
                  batch_size: int) -> tuple[float, torch.Tensor]:
    """LLG+'s impact (one image's share of its own class's row sum in a batch of
    ``batch_size``, times 1 + 1/K) and offset (a class's mean row sum from a batch of other
    classes' images), from each public class mean's gradient under its own label."""
    num_classes = len(class_means)
    device = next(model.parameters()).device
    # A BatchNorm in training mode would move the model's statistics: put them back after.
    # (Not a deep copy: a model that keeps a tensor of its last forward, PRECODE's KL term,
    # cannot be deep-copied.)
    saved = [b.clone() for b in model.buffers()]
    try:
        sums = torch.stack([
            classifier_gradient(parameter_gradients(model, class_means[c:c + 1].to(device),
                                                    torch.tensor([c], device=device)),
                                num_classes).sum(dim=1).cpu()
            for c in range(num_classes)])  # sums[c, j]: row j's sum for an image of class c
    finally:
        with torch.no_grad():
            for buffer, value in zip(model.buffers(), saved, strict=True):
                buffer.copy_(value)
    own = sums.diagonal()
    impact = float(own.mean()) / batch_size * (1 + 1 / num_classes)
    offset = (sums.sum(0) - own) / max(num_classes - 1, 1)
    return impact, offset


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


def _classifier_layer(model: nn.Module, rows: torch.Tensor) -> nn.Linear:
    """The model's last linear layer with the classifier gradient's shape."""
    layers = [m for m in model.modules()
              if isinstance(m, torch.nn.Linear) and m.weight.shape == rows.shape]
    if not layers:
        raise ValueError(f"no linear layer of shape {tuple(rows.shape)} in the model")
    return layers[-1]


def class_probabilities(gradients: list[torch.Tensor], num_classes: int,
                        model: nn.Module | None) -> torch.Tensor:
    """iLRG's P [K, K]: row j is the classifier's softmax on class j's mean embedding, read
    off the gradient as weight row j / bias entry j (uniform without a model; the
    classifier has a bias)."""
    if model is None:
        return torch.full((num_classes, num_classes), 1 / num_classes, dtype=torch.float64)
    rows = classifier_gradient(gradients, num_classes).detach().double()
    bias = classifier_bias_gradient(gradients, num_classes).detach().double()
    # the authors clip the ratio's decimal exponent to +-10 (a 0 entry counts as 1e-64)
    bias = torch.where(bias == 0, torch.full_like(bias, 1e-64), bias)
    embeddings = (rows / bias[:, None]).clamp(-1e11, 1e11)
    layer = _classifier_layer(model, rows)
    weight = layer.weight.detach().to(rows)
    offset = layer.bias.detach().to(rows) if layer.bias is not None else 0.0
    return (embeddings @ weight.T + offset).softmax(-1).cpu()


def ilrg_counts(gradients: list[torch.Tensor], batch_size: int, num_classes: int,
                probabilities: torch.Tensor) -> torch.Tensor:
    """iLRG's least-squares label counts (real-valued, [K]; the classifier has a bias):
    sum n = B and, per class i, sum_j n_j P[j, i] - n_i = B (bias gradient)_i."""
    bias = classifier_bias_gradient(gradients, num_classes)
    eye = torch.eye(num_classes, dtype=torch.float64)
    system = torch.cat([torch.ones(1, num_classes, dtype=torch.float64),
                        probabilities.double().T - eye])
    values = torch.cat([torch.tensor([float(batch_size)], dtype=torch.float64),
                        batch_size * bias.detach().double().cpu()])
    return torch.nan_to_num(torch.linalg.pinv(system) @ values)


def rounded_counts(counts: torch.Tensor, batch_size: int) -> torch.Tensor:
    """Whole counts that sum to ``batch_size``, as iLRG rounds (module docstring)."""
    whole = counts.clamp(min=0).round()
    whole[whole > batch_size] = 0
    while int(whole.sum()) != batch_size:
        moved = whole - counts  # how far rounding moved each count up
        if int(whole.sum()) > batch_size:
            whole[torch.argmax(torch.where(whole > 0, moved, -torch.inf))] -= 1
        else:
            whole[torch.argmin(moved)] += 1
    return torch.repeat_interleave(torch.arange(len(counts)), whole.long())


def ilrg_labels(gradients: list[torch.Tensor], batch_size: int, num_classes: int,
                model: nn.Module | None) -> torch.Tensor:
    """iLRG's per-class label counts as a label multiset (module docstring)."""
    if classifier_bias_gradient(gradients, num_classes) is None:
        raise ValueError("the 'ilrg' label rule needs a classifier with a bias")
    probabilities = class_probabilities(gradients, num_classes, model)
    counts = ilrg_counts(gradients, batch_size, num_classes, probabilities)
    return rounded_counts(counts, batch_size)


@dataclass(frozen=True)
class RuleInputs:
    """What a label rule may read: the update, the batch's size and class count, the public
    model and class means (None where the server has none), the true labels (the oracle's
    threat model only)."""

    gradients: list[torch.Tensor]
    batch_size: int
    num_classes: int
    model: nn.Module | None = None
    class_means: torch.Tensor | None = None
    oracle: torch.Tensor | None = None


@dataclass(frozen=True)
class LabelRule:
    """A label rule as every part of the suite uses it: how it recovers a batch's labels,
    when it reads the public class means (``public_data``: "never", "always", or "batches"
    of more than one image), the largest batch it reads (``max_batch``, None: any) and
    whether the label report may choose it as a setting's strongest rule (``candidate``:
    not the oracle, which is handed the labels, nor ``auto``, another rule's alias)."""

    recover: Callable[[RuleInputs], torch.Tensor]
    public_data: str = "never"
    max_batch: int | None = None
    candidate: bool = True

    def applies(self, batch_size: int) -> bool:
        return self.max_batch is None or batch_size <= self.max_batch

    def reads_public_data(self, batch_size: int) -> bool:
        return self.public_data == "always" or (self.public_data == "batches"
                                                and batch_size > 1)


def _oracle(x: RuleInputs) -> torch.Tensor:
    if x.oracle is None:
        raise ValueError("the 'oracle' label rule needs the true labels in the target")
    return x.oracle.clone()


def _llg_plus(x: RuleInputs) -> torch.Tensor:
    if x.model is None or x.class_means is None:  # nothing to measure on: LLG
        return llg_labels(x.gradients, x.batch_size, x.num_classes)
    impact, offset = public_impact(x.model, x.class_means, x.batch_size)
    return llg_labels(x.gradients, x.batch_size, x.num_classes, impact, offset)


def lone_negative_bias(gradients: list[torch.Tensor], num_classes: int) -> int | None:
    """One image's label where the classifier's bias gradient (softmax - one-hot, negative
    only at the label) has exactly one negative entry, whatever the features before the
    classifier (iDLG's row sums need them non-negative: PRECODE's decoder output is not);
    None where it has none (pruned) or several (noise, mixed targets)."""
    bias = classifier_bias_gradient(gradients, num_classes)
    if bias is None:
        return None
    negative = torch.nonzero(bias < 0).flatten()
    return int(negative[0]) if len(negative) == 1 else None


def _auto(x: RuleInputs) -> torch.Tensor:
    if x.batch_size > 1 and x.model is not None and x.class_means is not None:
        return _llg_plus(x)
    if x.batch_size == 1:
        label = lone_negative_bias(x.gradients, x.num_classes)
        if label is not None:
            return torch.tensor([label], dtype=torch.long)
    return infer_labels(x.gradients, x.batch_size, x.num_classes, "auto")


# The one list of label rules (config choices, the label job, the report, the tests):
# adding one is a function above plus one line here.
LABEL_RULES: dict[str, LabelRule] = {
    "auto": LabelRule(_auto, public_data="batches", candidate=False),
    "idlg": LabelRule(lambda x: infer_labels(x.gradients, x.batch_size, x.num_classes, "idlg"),
                      max_batch=1),
    "yin": LabelRule(lambda x: infer_labels(x.gradients, x.batch_size, x.num_classes, "yin")),
    "llg": LabelRule(lambda x: llg_labels(x.gradients, x.batch_size, x.num_classes)),
    "llg_plus": LabelRule(_llg_plus, public_data="always"),
    "bias": LabelRule(lambda x: bias_labels(
        x.gradients, x.batch_size, x.num_classes,
        mean_prediction(x.model, x.class_means, x.num_classes)), public_data="always"),
    "ilrg": LabelRule(lambda x: ilrg_labels(x.gradients, x.batch_size, x.num_classes,
                                            x.model)),
    "oracle": LabelRule(_oracle, candidate=False),
}


def reads_public_data(rule: str, batch_size: int) -> bool:
    """Whether ``rule`` reads the public class means for a batch of ``batch_size`` (the
    attacker's knowledge of the data distribution)."""
    return LABEL_RULES[rule].reads_public_data(batch_size)


def recover_labels(rule: str, gradients: list[torch.Tensor], batch_size: int,
                   num_classes: int, model: nn.Module | None = None,
                   class_means: torch.Tensor | None = None,
                   oracle: torch.Tensor | None = None) -> torch.Tensor:
    """The batch's labels by ``rule`` (a name in ``LABEL_RULES``)."""
    return LABEL_RULES[rule].recover(RuleInputs(gradients, batch_size, num_classes, model,
                                                class_means, oracle))
