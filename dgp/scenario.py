"""The attacked scenario's data, as each party holds it: the test images a seed attacks,
the user's other images (mixing partners a data defense draws), and the attacker's public
images from the training split (class means, imprint thresholds, the images a learned or
tuned attack trains on). The privacy, label and tuning jobs all read them from here, so an
attacker's public data and the users' images never overlap."""

from __future__ import annotations

from dataclasses import replace

from dgp.data import ImageData, distinct_draws
from dgp.lazy import torch
from dgp.types import DrawSamples, PublicKnowledge

# Training images the server may use as public knowledge of the data distribution (a
# malicious server's imprint thresholds; the mean image of the guessing floor).
PUBLIC_SAMPLES = 256


def public_indices(size: int, count: int = PUBLIC_SAMPLES) -> list[int]:
    """``count`` indices spread evenly over a split of ``size`` (an ImageFolder is sorted by
    class: its first images would all be airplanes); all of them if it has fewer."""
    return list(range(0, size, max(1, size // count)))[:count]


def public_samples(train: ImageData,
                   count: int = PUBLIC_SAMPLES) -> tuple[torch.Tensor, torch.Tensor]:
    """The training images at ``public_indices``."""
    return train.samples(public_indices(len(train.dataset), count))


def with_training_images(knowledge: PublicKnowledge, train: ImageData, count: int,
                         device: torch.device) -> PublicKnowledge:
    """``knowledge`` plus ``count`` normalised training images and their labels, for an
    attack that trains on public data (``Attack.public_training_images``). From the
    training split only: the attacked images are the test split's."""
    images, labels = public_samples(train, count)
    return replace(knowledge, images=knowledge.normalize(images).to(device),
                   labels=labels.to(device))


def attacked_indices(num_available: int, num_images: int, seed: int) -> list[int]:
    """The test images a seed attacks: a seeded permutation's first ``num_images``."""
    order = torch.randperm(num_available, generator=torch.Generator().manual_seed(seed))
    return order[:num_images].tolist()


def partner_draw(data: ImageData, exclude: list[int],
                 generator: torch.Generator) -> DrawSamples:
    """Draws of the user's other images (not attacked in this job): mixing partners, all
    distinct within a draw."""
    pool = torch.tensor(sorted(set(range(len(data.dataset))) - set(exclude)))
    return distinct_draws(pool, lambda chosen: data.samples(chosen.tolist()), generator)
