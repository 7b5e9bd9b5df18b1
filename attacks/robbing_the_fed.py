"""Robbing the Fed (Fowl et al., 2022): a malicious server's imprint block.

The server puts a block in front of the model it sends: a linear layer whose ``bins`` rows
all measure the same thing (the mean pixel value), with biases set to minus the quantiles of
that measurement on public data, then a ReLU, then a linear layer with identical columns
added back onto the input (so the model still works). An image activates every bin whose
threshold lies below its measurement. Subtracting the gradients of consecutive bins leaves
the images whose measurement falls between the two thresholds; when that is one image,

    x = (dL/dW_i - dL/dW_{i+1}) / (dL/db_i - dL/db_{i+1})

exactly. No optimisation: what the defense does to the first layer's gradient decides it.
"""

from __future__ import annotations

import math
from statistics import NormalDist
from typing import TYPE_CHECKING

from dgp.attack import Attack, AttackTarget, Reconstruction
from dgp.labels import infer_labels
from dgp.lazy import torch
from dgp.params import Param

if TYPE_CHECKING:
    from torch import nn


class RobbingTheFed(Attack):
    name = "rtf"
    parameters = {"bins": Param(128, int, low=2, doc="imprint rows: cut-offs on the mean pixel")}
    active = True
    # The bins count images whoever sent them: the sum of several users' gradients is read
    # the same way (Fowl et al. make this point for secure aggregation).
    aggregates = True

    def prepare_model(self, model: nn.Module, public_images: torch.Tensor) -> nn.Module:
        """Prepend the imprint block, its thresholds at quantiles of a normal fitted to the
        measurement on public images (the server's knowledge of the data distribution)."""
        from attacks.imprint import ImprintBlock  # an nn.Module: not read by validation

        measurement = public_images.flatten(1).mean(1)
        normal = NormalDist(float(measurement.mean()), float(measurement.std()) + 1e-8)
        bins = self.params["bins"]
        thresholds = torch.tensor([normal.inv_cdf((i + 1) / (bins + 1)) for i in range(bins)],
                                  dtype=torch.float32)
        block = ImprintBlock(tuple(public_images.shape[1:]), thresholds,
                             torch.Generator().manual_seed(0))
        device = next(model.parameters()).device
        return torch.nn.Sequential(block.to(device), model)

    def reconstruct(self, target: AttackTarget,
                    generator: torch.Generator | None = None) -> Reconstruction:
        block = target.model[0]
        weight_grad, bias_grad = (t.detach().cpu().double() for t in target.shared.tensors[:2])
        # Bins are ordered by increasing threshold: bin i minus bin i+1 isolates one slice.
        weight_diff = weight_grad[:-1] - weight_grad[1:]
        bias_diff = bias_grad[:-1] - bias_grad[1:]
        weight_diff = torch.cat([weight_diff, weight_grad[-1:]])  # last bin: above all
        bias_diff = torch.cat([bias_diff, bias_grad[-1:]])
        strongest = torch.argsort(bias_diff.abs(), descending=True)[: target.num_images]
        images = []
        for i in strongest.tolist():
            if bias_diff[i].abs() > 1e-12:
                images.append((weight_diff[i] / bias_diff[i]).float().view(block.image_shape))
            else:
                images.append(torch.zeros(block.image_shape))
        recovered = torch.stack(images)
        finite = bool(torch.isfinite(recovered).all())
        lower, upper = target.box
        recovered = torch.maximum(torch.minimum(recovered.nan_to_num(0.0), upper), lower)
        labels = infer_labels(target.shared.tensors, target.num_images, target.num_classes)
        return Reconstruction(recovered, labels, "ok" if finite else "diverged", math.nan, 0)
