"""The federated protocol a privacy job attacks: what a user computes and what the server sees.

A threat model is more than a defense: the same defense can hold for one user's single-step
gradient (FedSGD) and fail for a FedAvg update, or the reverse for the sum of many users'
updates. ``Protocol`` names that axis (the USENIX Security 2025 SoK's "what the server
observes"), and ``user_update`` computes what one user sends under it, differentiably when
an attacker simulates a candidate batch.

* ``fedsgd``: the gradient of the user's training loss at the server's weights.
* ``fedavg``: the weight change ``w_0 - w_E`` after ``local_steps`` plain SGD steps at
  ``local_lr``, each on the next ``local_batch_size`` images of the user's batch (cycling;
  0: the whole batch every step), as breaching's multi-step user and Dimitrov et al.
  (TMLR 2022) define it. The sign is the training code's (``dgp.fl.strategies.FedAvg``): for
  one step it is ``local_lr`` times the FedSGD gradient.
* ``users``: how many users' (each defended) updates the server sees only as their sum, as
  under secure aggregation (1: the user alone).
* ``batchnorm``: ``eval`` (layers normalise with the model's public running statistics) or
  ``train`` (with the batch's own statistics, which the server never sees).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn
from torch.func import functional_call

from dgp.gradients import model_penalty

ALGORITHMS = ("fedsgd", "fedavg")
BATCHNORM_MODES = ("eval", "train")


@dataclass(frozen=True)
class Protocol:
    """One threat model's protocol (see the module docstring for each field)."""

    algorithm: str = "fedsgd"
    local_steps: int = 1
    local_batch_size: int = 0
    local_lr: float = 0.1
    users: int = 1
    batchnorm: str = "eval"

    def __post_init__(self) -> None:
        if self.algorithm not in ALGORITHMS:
            raise ValueError(f"protocol algorithm must be one of {', '.join(ALGORITHMS)}, "
                             f"got {self.algorithm!r}")
        if self.batchnorm not in BATCHNORM_MODES:
            raise ValueError(f"protocol batchnorm must be one of {', '.join(BATCHNORM_MODES)}"
                             f", got {self.batchnorm!r}")

    @property
    def id(self) -> str:
        """The protocol's name in paths and the CSV, e.g. 'fedsgd', 'fedavg-s2-lr0.1',
        'fedsgd-n4', 'fedsgd-bntrain'."""
        text = self.algorithm
        if self.algorithm == "fedavg":
            text += f"-s{self.local_steps}"
            if self.local_batch_size:
                text += f"-b{self.local_batch_size}"
            text += f"-lr{self.local_lr:g}"
        if self.users > 1:
            text += f"-n{self.users}"
        if self.batchnorm == "train":
            text += "-bntrain"
        return text

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, entry: dict[str, Any]) -> Protocol:
        """From a config entry (unknown keys, such as the entry's grid filters, ignored)."""
        return cls(**{k: v for k, v in entry.items() if k in cls.__dataclass_fields__})


def user_update(model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor,
                protocol: Protocol, create_graph: bool = False) -> list[torch.Tensor]:
    """What one user sends before its defense, per trainable parameter tensor: the gradient
    (fedsgd) or the weight change after its local steps (fedavg). With ``create_graph`` the
    result stays differentiable w.r.t. ``inputs`` (an attacker's candidate). The model's
    mode is set by ``protocol.batchnorm`` for the call and restored after it; its running
    statistics are never changed (the update is computed on copies of the buffers)."""
    was_training = model.training
    model.train(protocol.batchnorm == "train")
    try:
        if protocol.algorithm == "fedsgd":
            return _gradient(model, inputs, targets, create_graph)
        return _local_change(model, inputs, targets, protocol, create_graph)
    finally:
        model.train(was_training)


def _gradient(model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor,
              create_graph: bool) -> list[torch.Tensor]:
    names, params = _trainable(model)
    buffers = {name: b.clone() for name, b in model.named_buffers()}
    loss = _loss(model, {**dict(zip(names, params, strict=True)), **buffers}, inputs, targets)
    gradients = torch.autograd.grad(loss, params, create_graph=create_graph)
    return [g if create_graph else g.detach() for g in gradients]


def _local_change(model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor,
                  protocol: Protocol, create_graph: bool) -> list[torch.Tensor]:
    names, start = _trainable(model)
    buffers = {name: b.clone() for name, b in model.named_buffers()}
    params = list(start)
    count = len(inputs)
    per_step = protocol.local_batch_size or count
    seen = 0
    for _ in range(protocol.local_steps):
        chunk = [(seen + i) % count for i in range(min(per_step, count))]
        seen = (seen + per_step) % count
        state = {**dict(zip(names, params, strict=True)), **buffers}
        loss = _loss(model, state, inputs[chunk], targets[chunk])
        steps = torch.autograd.grad(loss, params, create_graph=create_graph)
        params = [p - protocol.local_lr * g for p, g in zip(params, steps, strict=True)]
        if not create_graph:
            params = [p.detach().requires_grad_(True) for p in params]
    return [(p0 - p) if create_graph else (p0 - p).detach()
            for p0, p in zip(start, params, strict=True)]


def _trainable(model: nn.Module) -> tuple[list[str], list[torch.Tensor]]:
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    return [n for n, _ in named], [p for _, p in named]


def _loss(model: nn.Module, state: dict[str, torch.Tensor], inputs: torch.Tensor,
          targets: torch.Tensor) -> torch.Tensor:
    """The training loss (``dgp.gradients.training_loss``: penalties included) with the
    model's tensors replaced by ``state``, so the model itself is left untouched."""
    logits = functional_call(model, state, (inputs,))
    return nn.functional.cross_entropy(logits, targets) + model_penalty(model)
