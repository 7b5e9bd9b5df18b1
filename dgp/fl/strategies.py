"""What a user sends and how the server applies it: FedSGD (the DGP code's setting) or
FedAvg. The round loop (``dgp.fl.federated``) is the same for both.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import ClassVar

import torch
from torch import nn

from dgp.gradients import loss_and_gradients, training_loss
from dgp.optim import SGD

NextBatch = Callable[[], tuple[torch.Tensor, torch.Tensor]]


class Strategy:
    """A federated algorithm: the user's update and the server's optimizer."""

    name: ClassVar[str]

    def server_optimizer(self, model: nn.Module, settings) -> SGD:
        raise NotImplementedError

    def server_lr(self, lr: float) -> float:
        """The server optimizer's learning rate in a round whose scheduled lr is ``lr``."""
        raise NotImplementedError

    def user_update(self, model: nn.Module, images: torch.Tensor, labels: torch.Tensor,
                    settings, lr: float, draw: NextBatch) -> tuple[list[torch.Tensor], float]:
        """(the update the user sends, its training loss) from its batch (and ``draw``
        for further local batches)."""
        raise NotImplementedError


class FedSGD(Strategy):
    """Each user sends its gradient at the server's weights; the server steps with SGD,
    momentum and weight decay at the scheduled lr."""

    name = "fedsgd"

    def server_optimizer(self, model, settings):
        return SGD(model.parameters(), lr=settings.lr, momentum=settings.momentum,
                   weight_decay=settings.weight_decay)

    def server_lr(self, lr):
        return lr

    def user_update(self, model, images, labels, settings, lr, draw):
        loss, gradients = loss_and_gradients(model, images, labels)
        return gradients, loss


class FedAvg(Strategy):
    """Each user sends its weight change after ``local_steps`` SGD steps (momentum and weight
    decay local); the server applies the averaged change as it is (lr 1, nothing else)."""

    name = "fedavg"

    def server_optimizer(self, model, settings):
        return SGD(model.parameters(), lr=settings.lr, momentum=0.0, weight_decay=0.0)

    def server_lr(self, lr):
        return 1.0

    def user_update(self, model, images, labels, settings, lr, draw):
        return _local_update(model, images, labels, settings, lr, draw)


STRATEGIES: dict[str, Strategy] = {s.name: s for s in (FedSGD(), FedAvg())}


def _local_update(model: nn.Module, images: torch.Tensor, labels: torch.Tensor,
                  settings, lr: float, draw: NextBatch) -> tuple[list, float]:
    """FedAvg: the weight change after local SGD steps (first batch given, rest drawn)."""
    local = copy.deepcopy(model)
    optimizer = SGD(local.parameters(), lr=lr, momentum=settings.momentum,
                    weight_decay=settings.weight_decay)
    losses = []
    for step in range(settings.local_steps):
        x, y = (images, labels) if step == 0 else draw()
        optimizer.zero_grad()
        loss = training_loss(local, x, y)
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    change = [(p0 - p1).detach() for p0, p1 in zip(model.parameters(), local.parameters(),
                                                    strict=True)]
    return change, sum(losses) / len(losses)


