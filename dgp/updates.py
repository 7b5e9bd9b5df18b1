"""What one user sends under a protocol (``dgp.protocol``), differentiably when an attacker
simulates a candidate batch: the FedSGD gradient, or the FedAvg weight change after the
user's local steps (breaching's multi-step user; Dimitrov et al., TMLR 2022)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from dgp.gradients import model_penalty
from dgp.lazy import torch
from dgp.protocol import Protocol

if TYPE_CHECKING:
    from torch import nn


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
    for chunk in local_chunks(len(inputs), protocol):
        state = {**dict(zip(names, params, strict=True)), **buffers}
        loss = _loss(model, state, inputs[chunk], targets[chunk])
        steps = torch.autograd.grad(loss, params, create_graph=create_graph)
        params = [p - protocol.local_lr * g for p, g in zip(params, steps, strict=True)]
        if not create_graph:
            params = [p.detach().requires_grad_(True) for p in params]
    return [(p0 - p) if create_graph else (p0 - p).detach()
            for p0, p in zip(start, params, strict=True)]


def local_chunks(count: int, protocol: Protocol) -> list[list[int]]:
    """The images each local step trains on: the next ``local_batch_size`` of the user's
    ``count`` (cycling; 0: all of them every step)."""
    per_step = protocol.local_batch_size or count
    return [[(step * per_step + i) % count for i in range(min(per_step, count))]
            for step in range(protocol.local_steps)]


def _trainable(model: nn.Module) -> tuple[list[str], list[torch.Tensor]]:
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    return [n for n, _ in named], [p for _, p in named]


def _loss(model: nn.Module, state: dict[str, torch.Tensor], inputs: torch.Tensor,
          targets: torch.Tensor) -> torch.Tensor:
    """The training loss (``dgp.gradients.training_loss``: penalties included) with the
    model's tensors replaced by ``state``, so the model itself is left untouched."""
    logits = torch.func.functional_call(model, state, (inputs,))
    return torch.nn.functional.cross_entropy(logits, targets) + model_penalty(model)


def batched_user_updates(model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor,
                         protocol: Protocol) -> list[torch.Tensor] | None:
    """``user_update`` of many independent users at once: ``inputs`` [n, B, ...] and
    ``targets`` [n, B, ...] hold n users' batches; each returned tensor is [n, ...], entry
    i what user i sends. One vectorised computation (``torch.func.vmap`` over the update, as
    opacus computes per-sample gradients) instead of n: an attacker that simulates
    thousands of users' updates (``attacks.learned_inversion``) spends most of its time
    launching small kernels. None where the update cannot be vectorised: a model whose
    loss reads a layer's state (``PenalizedModule``) or whose BatchNorm normalises with
    the batch's statistics (or dropout draws) in training mode; the caller then loops
    over ``user_update``."""
    from dgp.penalty import PenalizedModule  # an nn.Module: not read by validation

    batchnorm = any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm)
                    for m in model.modules())
    dropout = any(isinstance(m, torch.nn.modules.dropout._DropoutNd) for m in model.modules())
    if (any(isinstance(m, PenalizedModule) for m in model.modules())
            or ((batchnorm or dropout) and protocol.batchnorm == "train")):
        return None
    names, params = _trainable(model)
    buffers = {name: b.clone() for name, b in model.named_buffers()}

    def loss(weights: tuple[torch.Tensor, ...], images: torch.Tensor,
             classes: torch.Tensor) -> torch.Tensor:
        return _loss(model, {**dict(zip(names, weights, strict=True)), **buffers}, images,
                     classes)

    def one_user(images: torch.Tensor, classes: torch.Tensor) -> tuple[torch.Tensor, ...]:
        weights = tuple(p.detach() for p in params)
        if protocol.algorithm == "fedsgd":
            return torch.func.grad(loss)(weights, images, classes)
        return functional_local_change(loss, weights, images, classes, protocol)

    was_training = model.training
    model.train(protocol.batchnorm == "train")
    try:
        return list(torch.func.vmap(one_user)(inputs, targets))
    finally:
        model.train(was_training)


def functional_local_change(loss: Callable[..., torch.Tensor],
                            start: tuple[torch.Tensor, ...], inputs: torch.Tensor,
                            targets: torch.Tensor, protocol: Protocol, *fixed: object,
                            ) -> tuple[torch.Tensor, ...]:
    """``_local_change`` in ``torch.func`` form (the same chunks, steps and sign):
    ``loss(weights, inputs, targets, *fixed)``, ``fixed`` being what the loss may change in
    place but is not differentiated (BatchNorm's buffers in train mode)."""
    weights = start
    for chunk in local_chunks(inputs.shape[0], protocol):
        steps = torch.func.grad(loss)(weights, inputs[chunk], targets[chunk], *fixed)
        weights = tuple(w - protocol.local_lr * g for w, g in zip(weights, steps, strict=True))
    return tuple(w0 - w for w0, w in zip(start, weights, strict=True))
