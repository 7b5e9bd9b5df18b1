"""Federated training under a defense: parameter-server FedSGD (the DGP code's setting) or
FedAvg with local steps.

Each round every user takes the next batch of its own shard, computes its update (FedSGD: the
gradient at the server's weights; FedAvg: the weight change after ``local_steps`` SGD steps),
passes it through error feedback and the defense, and uploads it. The server averages the
uploads and steps: FedSGD with SGD + momentum + weight decay and the lr schedule, FedAvg by
applying the averaged change.

Everything random comes from the seed, through independent streams (``rng_streams``): one
for the users' batch order, one for the augmentation, one for the defense (its data
transform, mixing partners and noise or masks). Runs at one seed therefore see the same
batches in the same order whatever the defense draws.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from defenses import create_defense
from defenses.base import DrawSamples, SharedGradient, UserBatch
from dgp.communication import aggregate_cost, shared_cost
from dgp.data import draw_distinct, encoding_center
from dgp.error_feedback import ErrorFeedback, wants_error_feedback
from dgp.gradients import loss_and_gradients, training_loss


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


def partition(labels: torch.Tensor, users: int, scheme: str, alpha: float,
              seed: int) -> list[torch.Tensor]:
    """Split sample indices among users: ``iid`` (equal random shards) or ``dirichlet``.

    Dirichlet: for each class, the share each user gets is drawn from Dir(alpha) (smaller
    alpha, more skew); drawn again (same seed stream) until no user is left empty.
    """
    rng = np.random.default_rng(seed)
    n = len(labels)
    if scheme == "iid":
        return [torch.as_tensor(s) for s in np.array_split(rng.permutation(n), users)]
    if scheme != "dirichlet":
        raise ValueError(f"unknown partition {scheme!r}; choose iid or dirichlet")
    labels_np = labels.numpy()
    for _ in range(100):
        shards: list[list[int]] = [[] for _ in range(users)]
        for c in np.unique(labels_np):
            members = rng.permutation(np.flatnonzero(labels_np == c))
            cuts = (np.cumsum(rng.dirichlet([alpha] * users))[:-1] * len(members)).astype(int)
            for user, part in enumerate(np.split(members, cuts)):
                shards[user].extend(part.tolist())
        if all(shards):
            return [torch.as_tensor(sorted(s)) for s in shards]
    raise ValueError(f"dirichlet(alpha={alpha}) left a user without data for {users} users; "
                     "raise alpha or use fewer users")


def rng_streams(seed: int) -> dict[str, torch.Generator]:
    """The independent random streams of one training run at ``seed``.

    ``batches`` (each user's shuffling) is seeded with ``seed`` itself; ``augment`` and
    ``defense`` with seeds derived from it by numpy's SeedSequence (children 1 and 2), so no
    stream's draws shift another's.
    """
    def derived(child: int) -> torch.Generator:
        sequence = np.random.SeedSequence(seed % (1 << 64), spawn_key=(child,))
        return torch.Generator().manual_seed(int(sequence.generate_state(1, np.uint64)[0]))

    return {"batches": torch.Generator().manual_seed(seed), "augment": derived(1),
            "defense": derived(2)}


def user_batches(shard: torch.Tensor, batch_size: int,
                 generator: torch.Generator) -> Iterator[torch.Tensor]:
    """Endless batches of a user's shard, reshuffled every pass (one pass = a local epoch)."""
    size = min(batch_size, len(shard))
    while True:
        order = shard[torch.randperm(len(shard), generator=generator)]
        for start in range(0, len(order) - size + 1, size):
            yield order[start:start + size]


def crop_and_flip(images: torch.Tensor, generator: torch.Generator,
                  padding: int = 4) -> torch.Tensor:
    """The CIFAR training augmentation: random crop after zero padding, random h-flip."""
    n, _, h, w = images.shape
    padded = nn.functional.pad(images, (padding,) * 4)
    offsets = torch.randint(0, 2 * padding + 1, (n, 2), generator=generator)
    flips = torch.rand(n, generator=generator) < 0.5
    out = torch.stack([padded[i, :, dy:dy + h, dx:dx + w]
                       for i, (dy, dx) in enumerate(offsets.tolist())])
    out[flips] = out[flips].flip(-1)
    return out


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


def _local_update(model: nn.Module, images: torch.Tensor, labels: torch.Tensor,
                  settings: TrainingSettings, lr: float,
                  draw: Callable[[], tuple[torch.Tensor, torch.Tensor]]) -> tuple[list, float]:
    """FedAvg: the weight change after local SGD steps (first batch given, rest drawn)."""
    local = copy.deepcopy(model)
    optimizer = torch.optim.SGD(local.parameters(), lr=lr, momentum=settings.momentum,
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


def train(model: nn.Module, train_images: torch.Tensor, train_labels: torch.Tensor,
          test_images: torch.Tensor, test_labels: torch.Tensor, defense_name: str,
          ratio: float, defense_params: dict[str, Any], settings: TrainingSettings,
          seed: int, on_checkpoint=None,
          normalize: Callable[[torch.Tensor], torch.Tensor] | None = None,
          num_classes: int | None = None) -> list[dict[str, Any]]:
    """Train ``model`` in place; return one record per evaluation.

    Images are in pixel space and go through ``normalize`` (identity if None) after
    augmentation and the defense's data transform. ``model`` must already carry the
    defense's architecture change (``build_model(..., defense)``). ``on_checkpoint(round,
    model)`` is called before the rounds listed in ``settings.checkpoint_rounds`` (round 0 =
    the initial model).
    """
    device = next(model.parameters()).device
    defense = create_defense(defense_name, ratio, defense_params)
    normalize = normalize or (lambda images: images)
    num_classes = num_classes or int(train_labels.max()) + 1
    feedback_on = wants_error_feedback(defense, settings.error_feedback)
    feedback = [ErrorFeedback(defense, feedback_on) for _ in range(settings.users)]
    shards = partition(train_labels, settings.users, settings.partition,
                       settings.dirichlet_alpha, seed)
    rng = rng_streams(seed)
    generator = rng["defense"]  # the defense's transform, partners and apply
    streams = [user_batches(s, settings.batch_size, rng["batches"]) for s in shards]

    center = encoding_center(normalize, train_images.shape[1])

    def partners(user: int, batch: torch.Tensor) -> DrawSamples:
        """Distinct partners from the user's shard, never an image of the batch itself."""
        pool = shards[user][~torch.isin(shards[user], batch)]

        def draw(count: int) -> tuple[torch.Tensor, torch.Tensor]:
            chosen = draw_distinct(pool if len(pool) else shards[user], count, generator)
            return train_images[chosen], train_labels[chosen]
        return draw

    def next_batch(user: int) -> tuple[torch.Tensor, torch.Tensor]:
        index = next(streams[user])
        images = train_images[index]
        if settings.augment:
            images = crop_and_flip(images, rng["augment"])
        images, targets = defense.transform_batch(images, train_labels[index], num_classes,
                                                  generator, partners(user, index), center)
        return normalize(images).to(device), targets.to(device)

    samples_per_round = sum(min(settings.batch_size, len(s)) for s in shards)
    rounds_per_epoch = max(1, math.ceil(len(train_labels) / samples_per_round))
    total_rounds = max(1, round(settings.epochs * rounds_per_epoch))
    eval_every = max(1, rounds_per_epoch // settings.evaluations_per_epoch)
    late = [r for r in settings.checkpoint_rounds if r > total_rounds]
    if late:
        raise ValueError(f"checkpoint rounds {late} are past the end of training "
                         f"({total_rounds} rounds)")
    test_inputs = normalize(test_images)
    fedsgd = settings.algorithm == "fedsgd"

    def server_optimizer() -> torch.optim.SGD:
        return torch.optim.SGD(
            model.parameters(), lr=settings.lr,
            momentum=settings.momentum if fedsgd else 0.0,
            weight_decay=settings.weight_decay if fedsgd else 0.0)

    optimizer = server_optimizer()
    model.train()
    records, losses = [], []
    upload_total = download_total = 0.0
    began = time.perf_counter()
    for round_index in range(total_rounds):
        if on_checkpoint and round_index in settings.checkpoint_rounds:
            on_checkpoint(round_index, model)
        epoch = round_index // rounds_per_epoch + 1
        lr = _lr_at(settings, epoch)
        if (settings.reset_optimizer_at_lr_change and epoch in settings.lr_schedule
                and round_index == (epoch - 1) * rounds_per_epoch and round_index):
            optimizer = server_optimizer()  # as the DGP code at each lr drop: no momentum
        for group in optimizer.param_groups:
            group["lr"] = lr if fedsgd else 1.0
        updates, inputs = [], []
        for user in range(settings.users):
            x, y = next_batch(user)
            inputs.append(x)
            if fedsgd:
                loss, gradients = loss_and_gradients(model, x, y)
                updates.append(gradients)
                losses.append(loss)
            else:
                change, loss = _local_update(model, x, y, settings, lr,
                                             lambda u=user: next_batch(u))
                updates.append(change)
                losses.append(loss)
        masks = None
        if getattr(defense, "aligned", False):
            broadcaster = round_index % settings.users
            masks = defense.band_masks(feedback[broadcaster].corrected(updates[broadcaster]))
        shared = [feedback[u].apply(updates[u], generator, masks, UserBatch(model, inputs[u]))
                  for u in range(settings.users)]
        costs = [shared_cost(s) for s in shared]
        upload = sum(c.sent_bytes for c in costs) / settings.users
        upload_bound = sum(c.sent_bytes - c.index_bytes + c.index_entropy_bytes
                           for c in costs) / settings.users
        download = aggregate_cost(shared).sent_bytes
        if masks is not None:  # the broadcaster uploads its mask once: shared by all users
            mask_cost = shared_cost(SharedGradient(updates[0], masks))
            upload += mask_cost.index_bytes / settings.users
            upload_bound += mask_cost.index_entropy_bytes / settings.users
        upload_total += upload
        download_total += download
        optimizer.zero_grad()
        for p, g in zip(model.parameters(), average(shared), strict=True):
            p.grad = g.to(device)
        optimizer.step()

        done = round_index + 1
        if done % eval_every == 0 or done == total_rounds:
            records.append({
                "round": done, "epoch": done / rounds_per_epoch,
                "test_acc": evaluate(model, test_inputs, test_labels),
                "train_loss": sum(losses) / len(losses),
                "dense_bytes": costs[0].dense_bytes,
                "upload_bytes": upload, "upload_entropy_bound_bytes": upload_bound,
                "download_bytes": download,
                "cumulative_upload_bytes": upload_total,
                "cumulative_download_bytes": download_total,
                "residual_norm": sum(f.residual_norm() for f in feedback) / settings.users,
                "error_feedback": feedback_on, "lr": lr, **defense.accounting(done),
                "seconds": time.perf_counter() - began,
            })
            losses = []
    if on_checkpoint and total_rounds in settings.checkpoint_rounds:
        on_checkpoint(total_rounds, model)
    return records
