"""MixUp as a privacy defense (GradAttack's setting): each image the user trains on is a
convex combination of k of its own images, with the labels mixed alike.

For every image of the batch, k - 1 distinct partners are drawn from the user's own data and
the coefficients come from Dirichlet(3, 1, ..., 1), redrawn until every coefficient lies in
[``lower_bound``, ``upper_bound``] (GradAttack: 0.65 and 0). The image itself takes the first
coefficient (the Dirichlet's large one), so it remains the one the attacker is scored on.
The ratio is k, the number of images mixed.
"""

from __future__ import annotations

import numpy as np
import torch

from defenses.base import Defense, DrawSamples

MAX_REDRAWS = 10_000


def mixing_coefficients(rows: int, k: int, upper: float, lower: float,
                        generator: torch.Generator | None) -> torch.Tensor:
    """[rows, k] coefficients from Dirichlet(3, 1, ..., 1) within [lower, upper]."""
    seed = int(torch.randint(2**62, (1,), generator=generator))
    rng = np.random.default_rng(seed)
    alpha = [3.0] + [1.0] * (k - 1)
    coefficients = rng.dirichlet(alpha, size=rows)
    for row in range(rows):
        for _ in range(MAX_REDRAWS):
            if k == 1 or lower <= coefficients[row].min() and coefficients[row].max() <= upper:
                break
            coefficients[row] = rng.dirichlet(alpha)
        else:
            raise ValueError(f"no Dirichlet draw met bounds [{lower}, {upper}] for k = {k}")
    return torch.as_tensor(coefficients, dtype=torch.float32)


def mix(images: torch.Tensor, labels: torch.Tensor, num_classes: int, k: int, upper: float,
        lower: float, generator: torch.Generator | None,
        draw: DrawSamples | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Mix each image with k - 1 partners from ``draw``; return images and soft labels."""
    n = len(images)
    onehot = torch.nn.functional.one_hot(labels.long(), num_classes).float()
    if k == 1:
        return images.clone(), onehot
    if draw is None:
        raise ValueError("mixing needs the user's data to draw partners from")
    weights = mixing_coefficients(n, k, upper, lower, generator).to(images.device)
    partners, partner_labels = draw(n * (k - 1))
    partners = partners.to(images.device).view(n, k - 1, *images.shape[1:])
    partner_onehot = torch.nn.functional.one_hot(partner_labels.long(), num_classes).float()
    partner_onehot = partner_onehot.to(images.device).view(n, k - 1, num_classes)
    stacked = torch.cat([images.unsqueeze(1), partners], 1)  # [n, k, C, H, W]
    stacked_labels = torch.cat([onehot.unsqueeze(1), partner_onehot], 1)
    mixed = (weights.view(n, k, 1, 1, 1) * stacked).sum(1)
    return mixed, (weights.unsqueeze(-1) * stacked_labels).sum(1)


class MixUp(Defense):
    name = "mixup"
    family = "data"
    ratio_meaning = "k, the number of images mixed into each training image"
    defaults = {"upper_bound": 0.65, "lower_bound": 0.0}

    @classmethod
    def ratio_error(cls, ratio, params):
        if ratio != int(ratio) or ratio < 1:
            return f"defense {cls.name!r} needs an integer ratio k >= 1, got {ratio}"
        if ratio > 1 and not (0 <= params["lower_bound"] <= 1 / ratio
                              <= params["upper_bound"] <= 1):
            return (f"{cls.name} needs 0 <= lower_bound <= 1/k <= upper_bound <= 1, got "
                    f"[{params['lower_bound']}, {params['upper_bound']}] for k = {ratio:g}")
        return None

    def transform_batch(self, images: torch.Tensor, labels: torch.Tensor, num_classes: int,
                        generator: torch.Generator | None = None,
                        draw: DrawSamples | None = None,
                        center: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        return mix(images, labels, num_classes, int(self.ratio), self.params["upper_bound"],
                   self.params["lower_bound"], generator, draw)
