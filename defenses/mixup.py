"""MixUp as a privacy defense (GradAttack's setting): each image the user trains on is a
convex combination of k of its own images, with the labels mixed alike.

For every image of the batch, k - 1 distinct partners are drawn from the user's own data and
the coefficients come from Dirichlet(3, 1, ..., 1), redrawn until every coefficient lies in
[``lower_bound``, ``upper_bound``] (GradAttack: 0.65 and 0). The image itself takes the first
coefficient (the Dirichlet's large one), so it remains the one the attacker is scored on.
The ratio is k, the number of images mixed.

A defense-aware attacker who reconstructed the mixed image estimates the user's own by
unmixing it (``unmix``), from the soft label and public class means.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from dgp.defense import Defense
from dgp.lazy import torch
from dgp.params import Param
from dgp.types import DrawSamples, PublicKnowledge

MAX_REDRAWS = 10_000
# Monte-Carlo draws of the protocol's coefficients for an attacker's expectations, and their
# public seed: the attacker simulates the protocol, never the user's draws.
PROTOCOL_DRAWS = 4000
PROTOCOL_SEED = 0


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


@lru_cache(maxsize=16)
def coefficient_moments(k: int, upper: float, lower: float) -> tuple[float, float]:
    """E[first coefficient] and E[sum of the partners' squared coefficients] under the
    protocol (truncation included, which moves E[lambda1] well below 3/(k+2))."""
    draws = mixing_coefficients(PROTOCOL_DRAWS, k, upper, lower,
                                torch.Generator().manual_seed(PROTOCOL_SEED))
    return float(draws[:, 0].mean()), float(draws[:, 1:].pow(2).sum(1).mean())


def unmix(mixed: torch.Tensor, targets: torch.Tensor, class_means: torch.Tensor,
          expected_first: float, partner_energy: float) -> torch.Tensor:
    """The user's images from (normalised) ``mixed`` images and their soft ``targets``.

    The user's class c1 is the target's argmax, its coefficient lambda1 = min(y[c1],
    E[lambda1]) (a partner of the same class adds to y[c1]); the partners' mass per class
    r = y - lambda1 e_c1 predicts their part, sum_c r_c m_c. What the prediction misses is
    split between the user's image and the partners as a linear MMSE estimate does for
    independent images of equal spread about their class means: x1 = m_c1 + lambda1 /
    (lambda1^2 + E[sum lambda_j^2]) (mixed - lambda1 m_c1 - sum_c r_c m_c). Chosen by
    measurement on public digits (docs/attacks.md): it beats exact unmixing,
    (mixed - sum r m) / lambda1, which amplifies the partners' deviations by 1 / lambda1.
    """
    return unmix_rounds(mixed.unsqueeze(0), targets.unsqueeze(0), class_means,
                        expected_first, partner_energy)


def own_class_weights(targets: torch.Tensor,
                      expected_first: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Each user image's class [N] (the argmax of the rounds' mean target, ``targets`` [R,
    N, K]) and its weight in each round [R, N], capped at the protocol's expected first
    coefficient: a partner of the same class must not count as the user's own image."""
    first = targets.mean(0).argmax(-1)
    return first, targets[:, torch.arange(targets.shape[1]), first].clamp(max=expected_first)


def unmix_rounds(mixed: torch.Tensor, targets: torch.Tensor, class_means: torch.Tensor,
                 expected_first: float, partner_energy: float) -> torch.Tensor:
    """``unmix`` over R rounds of mixes of the same images (``mixed`` [R, N, C, H, W],
    ``targets`` [R, N, K], each round with fresh partners and coefficients): the user's
    class is the argmax of the rounds' mean target, and the rounds' residuals combine as
    the linear MMSE estimate from R independent observations does, x1 = m_c1 + sum_r
    lambda_r res_r / (sum_r lambda_r^2 + E[sum lambda_j^2]); one round is ``unmix``."""
    first, weight = own_class_weights(targets, expected_first)
    partners = targets.clone()
    partners[:, torch.arange(targets.shape[1]), first] -= weight
    means = class_means.to(mixed)
    predicted = torch.einsum("rnk,kchw->rnchw", partners.to(mixed), means)
    own = means[first]
    weight = weight.to(mixed).view(*weight.shape, 1, 1, 1)
    residual = (weight * (mixed - weight * own - predicted)).sum(0)
    return own + residual / (weight.pow(2).sum(0) + partner_energy)


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
    mixes_labels = True
    estimate_reads_public_data = True  # the class means of the unmixing
    ratio_meaning = "k, the number of images mixed into each training image"
    example_ratio = 4
    parameters = {"upper_bound": Param(0.65, float, low=0, high=1,
                                       doc="largest mixing coefficient (the first image's)"),
                  "lower_bound": Param(0.0, float, low=0, high=1,
                                       doc="smallest mixing coefficient")}

    @classmethod
    def ratio_error(cls, ratio, params):
        if ratio != int(ratio) or ratio < 1:
            return f"defense {cls.name!r} needs an integer ratio k >= 1, got {ratio}"
        if ratio > 1 and not params["lower_bound"] <= 1 / ratio <= params["upper_bound"]:
            return (f"{cls.name} needs 0 <= lower_bound <= 1/k <= upper_bound <= 1, got "
                    f"[{params['lower_bound']}, {params['upper_bound']}] for k = {ratio:g}")
        return None

    def transform_batch(self, images: torch.Tensor, labels: torch.Tensor, num_classes: int,
                        generator: torch.Generator | None = None,
                        draw: DrawSamples | None = None,
                        center: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        return mix(images, labels, num_classes, int(self.ratio), self.params["upper_bound"],
                   self.params["lower_bound"], generator, draw)

    def estimate_private(self, reconstruction: torch.Tensor, soft_targets: torch.Tensor,
                         public: PublicKnowledge) -> torch.Tensor:
        """Unmixed as ``unmix`` says (k = 1: nothing was mixed)."""
        k = int(self.ratio)
        if k == 1:
            return reconstruction
        return self.unmixed(reconstruction.unsqueeze(0), soft_targets.unsqueeze(0), public)

    def estimate_private_rounds(self, reconstructions: torch.Tensor,
                                soft_targets: torch.Tensor,
                                public: PublicKnowledge) -> torch.Tensor:
        """Unmixed from every round at once, as ``unmix_rounds`` says."""
        return self.unmixed(reconstructions, soft_targets, public)

    def unmixed(self, mixtures: torch.Tensor, soft_targets: torch.Tensor,
                public: PublicKnowledge) -> torch.Tensor:
        """The user's images from R rounds' mixtures [R, N, C, H, W] (``unmix_rounds``)."""
        k = int(self.ratio)
        if k == 1:
            return mixtures.mean(0)
        first, energy = coefficient_moments(k, self.params["upper_bound"],
                                            self.params["lower_bound"])
        return unmix_rounds(mixtures, soft_targets, public.class_means, first, energy)
