"""Trap weights (Boenisch et al., "When the Curious Abandon Honesty: Federated Learning Is Not
Private", EuroS&P 2023): a malicious server's fully-connected block that sees through secure
aggregation.

The server puts a block in front of the model it sends: a linear layer of ``rows`` trap
rows, a ReLU, and a linear layer back to image shape added onto the input. Each trap row
gives a random half of its inputs -|N(0, sigma^2)| weights and the other half the same
magnitudes times ``scale_factor`` (0.95): negative-dominant rows, as the paper describes, so
each image switches on its own random subset of rows. A row that exactly one image of the
whole aggregate switched on gives that image:

    x = dL/dW_i / dL/db_i

exactly, whichever user it came from: summing users' gradients only adds more images.

Defaults and where they come from (breaching's ``CuriousAbandonHonesty`` block and its
server config ``malicious-model-cah.yaml``, which replicate the paper): ``rows`` 64 (its
``num_bins``), ``sigma`` 0.5, ``scale_factor`` 0.95, ``mu`` 0 (every trap bias), and the
readout x = dW_i / db_i (the paper's; breaching's ``ImprintAttacker``). The weights follow
``_init_trap_weights`` as of breaching's commit 21b3b8e ("fix trap weight initialization");
before it, breaching drew signed values and put their -0.95 copies on the other half, which
gives rows of either sign.

Where ours differs on purpose:

* The way back to image shape: one random column shared by every row, scaled so that the
  block moves a public image by ``gain`` (RMS, normalised units), like ``rtf``'s block, so
  the model nearly keeps its function.
  Breaching adds the rows' mean activation to every pixel, which changes the function.
* Which rows saw one image. Breaching returns every row's ratio (trimmed by gradient
  size). Here the server checks each candidate: for a row one image switched on, the back
  layer's gradient is that image's activation times the loss gradient at the block's output,
  and dL/db_i is that gradient through the column; the server recomputes both at the
  candidate for each label (users' losses are means over ``batch_size`` images). A row is
  accepted when they match within ``EXPLAINED`` (relative); a mixture of images does not
  match. The best label is that image's label. (A loss the server cannot recompute per
  image, such as a defense's penalty term, leaves rows unaccepted: the fill below.)
* ``peel``: an accepted image's share of every other row it switches on (known from the
  image and its gradient) is taken off those rows, so a row it shared with one unknown image
  then gives that image exactly; repeated until nothing new is found. ``peel: false`` reads
  only the rows one image switched on, as the reference does (how many images each
  recovers: docs/attacks.md).

Images no row isolates are filled with the distinct ratios of the unexplained rows that
look like an image (inside the pixel box: mixtures of the missing images, scored as the
inexact guesses they are), then zeros (the dataset mean, e.g. under a noise defense).
Labels: the check's for the images found, Yin's rule (``dgp.labels``) for the rest.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from dgp.attack import Attack, AttackTarget, Reconstruction
from dgp.labels import infer_labels
from dgp.lazy import torch
from dgp.params import Param

if TYPE_CHECKING:
    from torch import nn

    from attacks.imprint import TrapBlock

# The relative error below which an image explains a row's gradients, so the row saw that
# image alone: between what float32 leaves of a single image's row and what a mixture of
# images leaves. A row whose dL/db has fallen under this share of its own by peeling is
# explained.
EXPLAINED = 1e-2
# Two accepted images this close (relative L2) are one image seen by two rows.
SAME_IMAGE = 1e-3


def trap_matrix(rows: int, size: int, sigma: float, scale_factor: float,
                generator: torch.Generator) -> torch.Tensor:
    """Breaching's trap rows after its fix (21b3b8e): per row, a random half of the inputs
    gets -|N(0, sigma^2)| draws and the other half the same magnitudes times
    ``+scale_factor``: every row's weights sum below zero (the paper's negative-dominant
    rows), where the earlier signed draws gave rows of either sign. An odd input count
    leaves one input at 0 (breaching's scatter fails there)."""
    half = size // 2
    order = torch.argsort(torch.rand(rows, size, generator=generator), dim=1)
    negative = -(torch.randn(rows, half, generator=generator) * sigma).abs()
    weight = torch.zeros(rows, size)
    weight.scatter_(1, order[:, :half], negative)
    weight.scatter_(1, order[:, half:2 * half], -scale_factor * negative)
    return weight


@dataclass
class _Rows:
    """The trap rows' gradients (double precision), peeled as images are found."""

    weight: torch.Tensor  # dL/dW, [rows, size]
    bias: torch.Tensor  # dL/db, [rows]
    back: torch.Tensor  # dL/d(back weight), transposed: [rows, size]
    scale: torch.Tensor  # |dL/db| as sent, before any peeling, [rows]

    def open(self) -> torch.Tensor:
        """Rows that still hold images no found image explains."""
        return self.bias.abs() > EXPLAINED * self.scale


class TrapWeights(Attack):
    name = "trap_weights"
    parameters = {
        "rows": Param(64, int, low=1, doc="trap rows in the block (breaching's num_bins)"),
        "sigma": Param(0.5, float, low=0, low_open=True, doc="std of the trap weights"),
        "scale_factor": Param(0.95, float, low=0, low_open=True,
                              doc="positive half: scale_factor x the negative half's sizes"),
        "mu": Param(0.0, float, doc="every trap row's bias"),
        "gain": Param(0.1, float, low=0, low_open=True,
                      doc="RMS change the block makes to a public image (normalised units)"),
        "peel": Param(True, bool, doc="take found images off the rows they share (ours)"),
    }
    active = True
    aggregates = True
    algorithms = ("fedsgd",)

    def prepare_model(self, model: nn.Module, public_images: torch.Tensor) -> nn.Module:
        """Prepend the trap block; its back column is scaled on public images so the block
        changes them by ``gain`` (RMS), which keeps the model's predictions."""
        from attacks.imprint import TrapBlock  # an nn.Module: not read by validation

        p = self.params
        generator = torch.Generator().manual_seed(0)
        shape = tuple(public_images.shape[1:])
        size = math.prod(shape)
        weight = trap_matrix(p["rows"], size, p["sigma"], p["scale_factor"], generator)
        column = torch.randn(size, generator=generator)
        block = TrapBlock(shape, weight, p["mu"], column)
        with torch.no_grad():
            total = block.activations(public_images.cpu()).sum(1).pow(2).mean().sqrt()
            block.back.weight.mul_(p["gain"] / max(float(total), 1e-12))
        device = next(model.parameters()).device
        return torch.nn.Sequential(block.to(device), model)

    def reconstruct(self, target: AttackTarget,
                    generator: torch.Generator | None = None) -> Reconstruction:
        block, rest = target.model[0], target.model[1]
        weight, bias, back = (t.detach().cpu().double() for t in target.shared.tensors[:3])
        rows = _Rows(weight.clone(), bias.clone(), back.t().clone(), bias.abs())
        found, labels = _read_rows(block, rest, rows, target, self.params["peel"])
        count = target.num_images
        images = found[:count]
        if len(images) < count:
            images = torch.cat([images, _fill(block, rest, rows, target, images,
                                              count - len(images))])
        recovered = images.float().view(count, *block.image_shape)
        finite = bool(torch.isfinite(recovered).all())
        lower, upper = target.box
        recovered = torch.maximum(torch.minimum(recovered.nan_to_num(0.0), upper), lower)
        guessed = infer_labels(target.shared.tensors, count, target.num_classes)
        labels = torch.cat([torch.tensor(labels[:count], dtype=torch.long), guessed])[:count]
        return Reconstruction(recovered, labels, "ok" if finite else "diverged", math.nan, 0)


def _read_rows(block: TrapBlock, rest: nn.Module, rows: _Rows, target: AttackTarget,
               peel: bool) -> tuple[torch.Tensor, list[int]]:
    """The distinct images that rows seen by one image give, with their labels; with
    ``peel``, found images are taken off their other rows and the rows read again."""
    found: list[torch.Tensor] = []
    labels: list[int] = []
    while len(found) < target.num_images:
        new = 0
        for image, label, gradient in _certified(block, rest, rows, target):
            if any(_same(image, other) for other in found):
                continue
            found.append(image)
            labels.append(label)
            new += 1
            if peel:
                _peel(block, rows, image, gradient)
        if not (peel and new):
            break
    size = rows.weight.shape[1]
    return (torch.stack(found) if found else torch.zeros(0, size, dtype=torch.double)), labels


def _same(image: torch.Tensor, other: torch.Tensor) -> bool:
    return float((image - other).norm()) <= SAME_IMAGE * float(other.norm().clamp(min=1e-12))


def _flat_box(target: AttackTarget, shape: tuple[int, ...]) -> tuple[torch.Tensor, ...]:
    return tuple(b.detach().cpu().double().expand(1, *shape).flatten() for b in target.box)


def _trap(block: TrapBlock) -> tuple[torch.Tensor, torch.Tensor]:
    return block.trap.weight.detach().cpu().double(), block.trap.bias.detach().cpu().double()


def _candidates(block: TrapBlock, rows: _Rows,
                target: AttackTarget) -> tuple[torch.Tensor, torch.Tensor]:
    """Open rows whose ratio dW / db lies in the pixel box and switches its own row on (what
    an image alone would give), as (row indices, ratios)."""
    index = rows.open().nonzero().flatten()
    ratios = rows.weight[index] / rows.bias[index, None]
    lower, upper = _flat_box(target, block.image_shape)
    slack = 1e-3 * (upper - lower)
    inside = ((ratios >= lower - slack) & (ratios <= upper + slack)).all(1)
    weight, bias = _trap(block)
    switched_on = (ratios * weight[index]).sum(1) + bias[index] > 0
    keep = inside & switched_on
    return index[keep], ratios[keep]


def _certified(block: TrapBlock, rest: nn.Module, rows: _Rows,
               target: AttackTarget) -> list[tuple[torch.Tensor, int, torch.Tensor]]:
    """(image, label, input gradient) for the candidate rows that their image explains:
    rows that one image alone switched on."""
    index, ratios = _candidates(block, rows, target)
    if not len(index):
        return []
    error, label, gradient = _probe(block, rest, ratios, index, rows, target)
    return [(ratios[k], int(label[k]), gradient[k]) for k in range(len(index))
            if error[k] < EXPLAINED]


def _probe(block: TrapBlock, rest: nn.Module, images: torch.Tensor, index: torch.Tensor,
           rows: _Rows, target: AttackTarget) -> tuple[torch.Tensor, ...]:
    """How well one image explains each row ``index[k]`` (``images[k]`` with its best
    label): the relative error of the back-layer and bias gradients it predicts, that
    label, and its gradient at the block's output (one backward pass per class)."""
    device = next(rest.parameters()).device
    weight, bias = _trap(block)
    activation = torch.relu((images * weight[index]).sum(1) + bias[index])
    column = block.back.weight.detach().cpu().double().t()[index]
    with torch.no_grad():
        outputs = block(images.float().to(device).view(-1, *block.image_shape))
    best = torch.full((len(images),), math.inf, dtype=torch.double)
    label = torch.zeros(len(images), dtype=torch.long)
    chosen = torch.zeros_like(images)
    with torch.enable_grad():
        outputs.requires_grad_(True)
        logits = rest(outputs)
        for candidate in range(target.num_classes):
            targets = torch.full((len(images),), candidate, device=device)
            loss = torch.nn.functional.cross_entropy(logits, targets, reduction="sum")
            (gradient,) = torch.autograd.grad(loss, outputs, retain_graph=True)
            # Each user's loss is the mean over its batch.
            gradient = gradient.flatten(1).cpu().double() / target.batch_size
            back = rows.back[index] - activation[:, None] * gradient
            share = rows.bias[index] - (column * gradient).sum(1)
            error = torch.maximum(back.norm(dim=1) / rows.back[index].norm(dim=1),
                                  share.abs() / rows.bias[index].abs())
            better = error < best
            best[better], label[better] = error[better], candidate
            chosen[better] = gradient[better]
    return best, label, chosen


def _peel(block: TrapBlock, rows: _Rows, image: torch.Tensor, gradient: torch.Tensor) -> None:
    """Take a found image's contribution (predicted from the image and its input gradient)
    off every row it switches on."""
    weight, bias = _trap(block)
    activation = torch.relu(weight @ image + bias)
    on = activation > 0
    share = block.back.weight.detach().cpu().double().t() @ gradient  # dL/db per row
    rows.weight[on] -= share[on, None] * image
    rows.bias[on] -= share[on]
    rows.back[on] -= activation[on, None] * gradient


def _fill(block: TrapBlock, rest: nn.Module, rows: _Rows, target: AttackTarget,
          found: torch.Tensor, missing: int) -> torch.Tensor:
    """``missing`` guesses for the images no row isolates: the open rows' ratios that look
    like an image (in the box, switching their row on: mixtures of the missing images),
    distinct, best explained first; zeros (the dataset mean) when they run out."""
    size = rows.weight.shape[1]
    index, ratios = _candidates(block, rows, target)
    picked: list[torch.Tensor] = []
    if len(index):
        error, _, _ = _probe(block, rest, ratios, index, rows, target)
        for k in torch.argsort(error).tolist():
            if len(picked) == missing:
                break
            if not any(_same(ratios[k], other) for other in [*found, *picked]):
                picked.append(ratios[k])
    picked += [torch.zeros(size, dtype=torch.double)] * (missing - len(picked))
    return torch.stack(picked) if picked else torch.zeros(0, size, dtype=torch.double)
