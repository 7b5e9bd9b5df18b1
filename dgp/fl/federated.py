"""Federated training under a defense: parameter-server FedSGD (the DGP code's setting) or
FedAvg with local steps (``dgp.fl.strategies``), one round loop for both.

Each round every user takes the next batch of its own shard (``dgp.fl.users``), computes its
update, passes it through error feedback and the defense, and uploads it. The server
averages the uploads and steps. Each evaluation records test accuracy, loss, the bytes each
user uploads and downloads, and the error-feedback residual.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from dgp.columns import checked_accounting
from dgp.communication import aggregate_cost, shared_cost
from dgp.defense import Defense
from dgp.fl.error_feedback import ErrorFeedback, wants_error_feedback
from dgp.fl.strategies import STRATEGIES
from dgp.fl.users import FederatedData, Users
from dgp.types import SharedGradient, UserBatch


@dataclass
class TrainingSettings:
    """The training schedule (config key ``training``)."""

    users: int = 10
    batch_size: int = 32
    epochs: float = 150
    lr: float = 0.1
    lr_schedule: dict[int, float] = field(default_factory=lambda: {51: 0.01, 71: 0.005})
    momentum: float = 0.9
    weight_decay: float = 1e-4
    algorithm: str = "fedsgd"
    local_steps: int = 1
    partition: str = "iid"
    dirichlet_alpha: float = 0.5
    error_feedback: Any = "auto"
    evaluations_per_epoch: int = 1
    augment: bool = False
    checkpoint_rounds: list[int] = field(default_factory=list)
    # The DGP code builds a new SGD (fresh momentum) at each lr drop; False keeps momentum.
    reset_optimizer_at_lr_change: bool = False

    @classmethod
    def from_config(cls, entry: dict[str, Any]) -> TrainingSettings:
        entry = {k: v for k, v in entry.items() if k != "enabled"}
        if "lr_schedule" in entry:
            entry["lr_schedule"] = {int(k): float(v) for k, v in entry["lr_schedule"].items()}
        return cls(**entry)


def average(shared: list[SharedGradient]) -> list[torch.Tensor]:
    count = len(shared)
    return [torch.stack(parts).sum(0) / count for parts in zip(*(s.tensors for s in shared),
                                                                strict=True)]


@torch.no_grad()
def evaluate(model: nn.Module, images: torch.Tensor, labels: torch.Tensor,
             batch_size: int = 500) -> float:
    """Test accuracy (model in eval mode; restored to train mode afterwards)."""
    model.eval()
    device = next(model.parameters()).device
    correct = 0
    for start in range(0, len(labels), batch_size):
        logits = model(images[start:start + batch_size].to(device))
        correct += int((logits.argmax(1).cpu() == labels[start:start + batch_size]).sum())
    model.train()
    return correct / len(labels)


def _lr_at(settings: TrainingSettings, epoch: int) -> float:
    """Learning rate in (1-based) ``epoch``: the last schedule entry at or before it."""
    lr = settings.lr
    for start, value in sorted(settings.lr_schedule.items()):
        if epoch >= start:
            lr = value
    return lr


@dataclass
class _Schedule:
    rounds_per_epoch: int
    total_rounds: int
    eval_every: int


def _schedule(settings: TrainingSettings, samples: int, shards: list[torch.Tensor]) -> _Schedule:
    samples_per_round = sum(min(settings.batch_size, len(s)) for s in shards)
    rounds_per_epoch = max(1, math.ceil(samples / samples_per_round))
    total_rounds = max(1, round(settings.epochs * rounds_per_epoch))
    late = [r for r in settings.checkpoint_rounds if r > total_rounds]
    if late:
        raise ValueError(f"checkpoint rounds {late} are past the end of training "
                         f"({total_rounds} rounds)")
    return _Schedule(rounds_per_epoch, total_rounds,
                     max(1, rounds_per_epoch // settings.evaluations_per_epoch))


def _share(defense: Defense, feedback: list[ErrorFeedback], updates: list, inputs: list,
           model: nn.Module, generator: torch.Generator,
           round_index: int) -> list[SharedGradient]:
    """Every user's upload (error-corrected; the round's leader, for a defense whose round
    has one, takes turns), and the residuals it leaves."""
    corrected = [f.corrected(update) for f, update in zip(feedback, updates, strict=True)]
    shared = defense.share_round(corrected, generator, [UserBatch(model, x) for x in inputs],
                                 leader=round_index % len(updates))
    for f, c, s in zip(feedback, corrected, shared, strict=True):
        f.keep_unsent(c, s)
    return shared


def _traffic(shared: list[SharedGradient]) -> dict[str, float]:
    """Bytes per user of the round: upload (and its index-entropy bound), download. Positions
    sent once for several users (a broadcast band) count once, in their sender's upload."""
    users = len(shared)
    costs = [shared_cost(s) for s in shared]
    upload = sum(c.sent_bytes for c in costs) / users
    bound = sum(c.sent_bytes - c.index_bytes + c.index_entropy_bytes for c in costs) / users
    return {"dense_bytes": costs[0].dense_bytes, "upload_bytes": upload,
            "upload_entropy_bound_bytes": bound,
            "download_bytes": aggregate_cost(shared).sent_bytes}


def _totals_and_feedback(totals: dict[str, float], feedback: list[ErrorFeedback],
                         feedback_on: bool) -> dict[str, Any]:
    return {"cumulative_upload_bytes": totals["upload"],
            "cumulative_download_bytes": totals["download"],
            "residual_norm": sum(f.residual_norm() for f in feedback) / len(feedback),
            "error_feedback": feedback_on}


def train(model: nn.Module, data: FederatedData, defense: Defense, settings: TrainingSettings,
          seed: int, on_checkpoint: Callable[[int, nn.Module], None] | None = None,
          ) -> list[dict[str, Any]]:
    """Train ``model`` in place under ``defense``; return one record per evaluation.

    ``model`` must already carry the defense's architecture change (``build_model(...,
    wrap=defense.wrap_model)``). ``on_checkpoint(round, model)`` is called before the rounds
    listed in ``settings.checkpoint_rounds`` (round 0 = the initial model).
    """
    checked_accounting(defense.name, defense.accounting(1))  # refused before any round runs
    device = next(model.parameters()).device
    strategy = STRATEGIES[settings.algorithm]
    feedback_on = wants_error_feedback(defense, settings.error_feedback)
    feedback = [ErrorFeedback(defense, feedback_on) for _ in range(settings.users)]
    users = Users(data, defense, settings.users, settings.batch_size, settings.partition,
                  settings.dirichlet_alpha, settings.augment, seed, device)
    schedule = _schedule(settings, len(data.train_labels), users.shards)
    test_inputs = data.normalize(data.test_images)
    optimizer = strategy.server_optimizer(model, settings)
    model.train()
    records, losses, totals = [], [], {"upload": 0.0, "download": 0.0}
    began = time.perf_counter()
    for round_index in range(schedule.total_rounds):
        if on_checkpoint and round_index in settings.checkpoint_rounds:
            on_checkpoint(round_index, model)
        epoch = round_index // schedule.rounds_per_epoch + 1
        lr = _lr_at(settings, epoch)
        if (settings.reset_optimizer_at_lr_change and epoch in settings.lr_schedule
                and round_index == (epoch - 1) * schedule.rounds_per_epoch and round_index):
            optimizer = strategy.server_optimizer(model, settings)  # as the DGP code
        optimizer.lr = strategy.server_lr(lr)
        updates, inputs = [], []
        for user in range(settings.users):
            x, y = users.next_batch(user)
            inputs.append(x)
            update, loss = strategy.user_update(model, x, y, settings, lr,
                                                lambda u=user: users.next_batch(u))
            updates.append(update)
            losses.append(loss)
        shared = _share(defense, feedback, updates, inputs, model, users.generator,
                        round_index)
        traffic = _traffic(shared)
        totals["upload"] += traffic["upload_bytes"]
        totals["download"] += traffic["download_bytes"]
        optimizer.zero_grad()
        for p, g in zip(model.parameters(), average(shared), strict=True):
            p.grad = g.to(device)
        optimizer.step()
        done = round_index + 1
        if done % schedule.eval_every == 0 or done == schedule.total_rounds:
            records.append({
                "round": done, "epoch": done / schedule.rounds_per_epoch,
                "test_acc": evaluate(model, test_inputs, data.test_labels),
                "train_loss": sum(losses) / len(losses), **traffic,
                **_totals_and_feedback(totals, feedback, feedback_on), "lr": lr,
                **checked_accounting(defense.name, defense.accounting(done)),
                "seconds": time.perf_counter() - began,
            })
            losses = []
    if on_checkpoint and schedule.total_rounds in settings.checkpoint_rounds:
        on_checkpoint(schedule.total_rounds, model)
    return records
