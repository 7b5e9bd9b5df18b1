"""The users' side of federated training: how the training set is split among them, the
seeded random streams of a run, and each user's endless supply of (augmented, defended)
batches.

Everything random comes from the seed, through independent streams (``rng_streams``): one
for the users' batch order, one for the augmentation, one for the defense (its data
transform, mixing partners and noise or masks). Runs at one seed therefore see the same
batches in the same order whatever the defense draws.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from dgp.data import draw_distinct, encoding_center
from dgp.defense import Defense
from dgp.types import DrawSamples


@dataclass
class FederatedData:
    """The training and test splits in pixel space, the normalisation applied after
    augmentation and the defense's data transform (None: identity), and the class count
    (None: the largest training label + 1)."""

    train_images: torch.Tensor
    train_labels: torch.Tensor
    test_images: torch.Tensor
    test_labels: torch.Tensor
    normalize: Callable[[torch.Tensor], torch.Tensor] | None = None
    num_classes: int | None = None

    def __post_init__(self) -> None:
        if self.normalize is None:
            self.normalize = _identity
        if self.num_classes is None:
            self.num_classes = int(self.train_labels.max()) + 1


def _identity(images: torch.Tensor) -> torch.Tensor:
    return images


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


class Users:
    """Every user's shard and batch stream; ``next_batch(user)`` is the user's next batch,
    augmented and passed through the defense's data transform, normalised, on ``device``."""

    def __init__(self, data: FederatedData, defense: Defense, users: int, batch_size: int,
                 partition_scheme: str, dirichlet_alpha: float, augment: bool, seed: int,
                 device: torch.device) -> None:
        self.data, self.defense, self.augment, self.device = data, defense, augment, device
        self.shards = partition(data.train_labels, users, partition_scheme, dirichlet_alpha,
                                seed)
        self.rng = rng_streams(seed)
        self.generator = self.rng["defense"]  # the defense's transform, partners and apply
        self.streams = [user_batches(s, batch_size, self.rng["batches"]) for s in self.shards]
        self.center = encoding_center(data.normalize, data.train_images.shape[1])

    def partners(self, user: int, batch: torch.Tensor) -> DrawSamples:
        """Distinct partners from the user's shard, never an image of the batch itself."""
        shard = self.shards[user]
        pool = shard[~torch.isin(shard, batch)]

        def draw(count: int) -> tuple[torch.Tensor, torch.Tensor]:
            chosen = draw_distinct(pool if len(pool) else shard, count, self.generator)
            return self.data.train_images[chosen], self.data.train_labels[chosen]
        return draw

    def next_batch(self, user: int) -> tuple[torch.Tensor, torch.Tensor]:
        index = next(self.streams[user])
        images = self.data.train_images[index]
        if self.augment:
            images = crop_and_flip(images, self.rng["augment"])
        images, targets = self.defense.transform_batch(
            images, self.data.train_labels[index], self.data.num_classes, self.generator,
            self.partners(user, index), self.center)
        return self.data.normalize(images).to(self.device), targets.to(self.device)
