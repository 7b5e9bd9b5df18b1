"""PRECODE (Scheliga et al., WACV 2022): a variational bottleneck before the classifier.

As the reference ``VariationalBottleneck.py`` (PRECODE's, used by the DGP code): the
classifier input (dimension F) is encoded to the mean and, through a softplus, the standard
deviation of a K-dimensional Gaussian; a sample z of it is decoded back to F dimensions and
classified. Sampling happens on **every** forward pass, in training and evaluation alike,
for the user and for the attacker's copy of the model (the attacker knows the architecture,
never the user's draw). The training loss adds ``beta * KL(q(z|x) || N(0, I))``, the KL in
**bits** as in the reference (``.div(math.log(2))``; ``kl_unit: nats`` drops that factor).
The model factory applies this wrapper for training and attacks alike, so both see the same
architecture. The ratio is beta (the DGP code: K = 256, beta = 1e-3).

The wrapped model is larger than the undefended one (LeNet on digits: 606,330 parameters
against 15,226), so its dense upload is too; byte shares are taken against the undefended
model's dense gradient (``dense_bytes``), never against the wrapped model's own.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING

from dgp.defense import Defense
from dgp.lazy import torch
from dgp.params import Param

if TYPE_CHECKING:
    from torch import nn

    from dgp.protocol import Protocol

KL_UNITS = ("bits", "nats")


class Precode(Defense):
    name = "precode"
    family = "model"
    ratio_meaning = "beta, the weight of the bottleneck's KL term (K = params.size)"
    example_ratio = 1e-3
    parameters = {"size": Param(256, int, low=1, doc="K, the bottleneck's width"),
                  "kl_unit": Param("bits", str, choices=KL_UNITS,
                                   doc="the unit of the KL term beta weighs")}

    @classmethod
    def ratio_error(cls, ratio, params):
        if ratio < 0:
            return f"defense {cls.name!r} needs ratio (beta) >= 0, got {ratio}"
        return None

    def wrap_model(self, model: nn.Module) -> nn.Module:
        from defenses.bottleneck import VariationalBottleneck  # an nn.Module: imported here

        if not isinstance(getattr(model, "fc", None), torch.nn.Linear):
            raise ValueError("precode needs a model whose classifier is a Linear layer 'fc'")
        bottleneck = VariationalBottleneck(model.fc.in_features, int(self.params["size"]),
                                           self.ratio, self.params["kl_unit"])
        model.fc = torch.nn.Sequential(bottleneck, model.fc)
        return model

    def reproducible_model(self, model: nn.Module, tensors: list[torch.Tensor],
                           num_images: int, protocol: Protocol) -> nn.Module:
        """The model with the user's noise draw fixed, read off one image's FedSGD gradient
        (the Bayes framework's PRECODE break, Balunovic et al., ICLR 2022): the encoder's
        and the decoder's inputs are each a linear layer's input, exact from its weight
        and bias gradients (``dgp.gradients.linear_input``); the encoder of the first gives
        the mean and std, and the decoder's input is mean + noise x std. Other protocols
        (a batch's or a sum's rows mix several inputs; FedAvg moves the weights between
        steps) keep the model drawing afresh."""
        from dgp.gradients import linear_input  # torch at call time only

        if num_images != 1 or protocol.algorithm != "fedsgd" or protocol.users != 1:
            return model
        bottleneck = _bottleneck(model)
        gradient = dict(zip((id(p) for p in model.parameters() if p.requires_grad), tensors,
                            strict=True))

        def layer_input(layer: torch.nn.Linear) -> torch.Tensor:
            return linear_input(gradient[id(layer.weight)], gradient[id(layer.bias)])

        with torch.no_grad():
            mean, std = bottleneck.statistics(layer_input(bottleneck.encoder).unsqueeze(0))
            noise = (layer_input(bottleneck.decoder).unsqueeze(0) - mean) / std
        bottleneck.kl = bottleneck.kl.detach()  # its last forward's graph cannot be copied
        fixed = copy.deepcopy(model)
        _bottleneck(fixed).noise = noise
        return fixed


def _bottleneck(model: nn.Module) -> nn.Module:
    from defenses.bottleneck import VariationalBottleneck  # an nn.Module: imported here

    return next(m for m in model.modules() if isinstance(m, VariationalBottleneck))
