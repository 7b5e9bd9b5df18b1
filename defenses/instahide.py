"""InstaHide (Huang et al. 2020), as in GradAttack: MixUp of k images, then a random sign
flip of every pixel.

The mixing is ``mixup``'s (k - 1 distinct partners from the user's own data,
Dirichlet(3, 1, ..., 1) coefficients within bounds, labels mixed alike). GradAttack flips
the sign of the *normalised* image (its datasets yield mean/std-normalised tensors), which
in pixel space mirrors a flipped pixel about the dataset mean: x -> 2 mean - x
(``flip_center: mean``, the default). The InstaHide paper's [-1, 1] encoding mirrors about
0.5 instead, x -> 1 - x (``flip_center: half``). A fresh mask is drawn per image from the
generator. The ratio is k.

A defense-aware attacker knows |x - pivot| survives the flips: it takes each pixel's side
of the pivot from the public expected mixture, then unmixes as for MixUp
(``unflip_estimate``).
"""

from __future__ import annotations

from defenses.mixup import MixUp, coefficient_moments, mix, own_class_weights
from dgp.lazy import torch
from dgp.params import Param
from dgp.types import DrawSamples, PublicKnowledge

FLIP_CENTERS = ("mean", "half")


def flip_signs(images: torch.Tensor, generator: torch.Generator | None,
               center: torch.Tensor | float) -> torch.Tensor:
    """Flip each pixel's sign about ``center`` (x -> 2 center - x) with probability 1/2."""
    flips = torch.randint(2, images.shape, generator=generator).to(images.device).bool()
    return torch.where(flips, 2 * center - images, images)


# Passes of the several-round decode: each takes the pixels' sides from the expected
# mixture with the previous pass's estimate of the user's image in place of its class mean.
REFINEMENTS = 3


def unflip_estimate(flipped: torch.Tensor, targets: torch.Tensor, class_means: torch.Tensor,
                    pivot: torch.Tensor | float) -> torch.Tensor:
    """The mixture behind (normalised) ``flipped`` images: a flip keeps each pixel's
    distance to ``pivot`` and hides only its side, taken from the public expected mixture
    sum_c y_c m_c (exact wherever that guess has the true mixture's side)."""
    expected = torch.einsum("...k,kchw->...chw", targets.to(flipped), class_means.to(flipped))
    return unflip(flipped, expected, pivot)


def unflip(flipped: torch.Tensor, expected: torch.Tensor,
           pivot: torch.Tensor | float) -> torch.Tensor:
    """Each pixel of ``flipped`` put on the side of ``pivot`` that ``expected`` is on."""
    side = torch.where(expected >= pivot, 1.0, -1.0)
    return pivot + side * (flipped - pivot).abs()


def refined_expectation(targets: torch.Tensor, class_means: torch.Tensor,
                        estimate: torch.Tensor, expected_first: float) -> torch.Tensor:
    """The expected mixture of each round (``targets`` [R, N, K]) with the user's image
    ``estimate`` [N, C, H, W] in place of its class mean, weighted as ``unmix_rounds``
    weighs it (the user's class: the rounds' mean target's argmax)."""
    means = class_means.to(estimate)
    expected = torch.einsum("rnk,kchw->rnchw", targets.to(estimate), means)
    first, weight = own_class_weights(targets, expected_first)
    return expected + weight.to(estimate).view(*weight.shape, 1, 1, 1) * (estimate - means[first])


class InstaHide(MixUp):
    name = "instahide"
    ratio_meaning = "k, the number of images mixed before the random sign flip"
    parameters = {**MixUp.parameters,
                  "flip_center": Param("mean", str, choices=FLIP_CENTERS,
                                       doc="the value the random sign flip reflects about")}

    def transform_batch(self, images: torch.Tensor, labels: torch.Tensor, num_classes: int,
                        generator: torch.Generator | None = None,
                        draw: DrawSamples | None = None,
                        center: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        mixed, targets = mix(images, labels, num_classes, int(self.ratio),
                             self.params["upper_bound"], self.params["lower_bound"],
                             generator, draw)
        if self.params["flip_center"] == "half":
            pivot: torch.Tensor | float = 0.5
        else:
            pivot = 0.0 if center is None else center.to(mixed.device)
        return flip_signs(mixed, generator, pivot), targets

    def estimate_private(self, reconstruction: torch.Tensor, soft_targets: torch.Tensor,
                         public: PublicKnowledge) -> torch.Tensor:
        """The flips undone as ``unflip_estimate`` says (about the flip's pivot in the
        normalised space), then unmixed as MixUp's."""
        pivot = self._pivot(public).to(reconstruction)
        mixture = unflip_estimate(reconstruction, soft_targets, public.class_means, pivot)
        return super().estimate_private(mixture, soft_targets, public)

    def estimate_private_rounds(self, reconstructions: torch.Tensor,
                                soft_targets: torch.Tensor,
                                public: PublicKnowledge) -> torch.Tensor:
        """Several rounds of the same images (Carlini et al.'s observation: one image in
        many encodings): unflipped and unmixed from all rounds at once, then ``REFINEMENTS``
        more passes, each taking the pixels' sides from the expected mixtures with the last
        estimate of the user's image in it (``refined_expectation``). One round is
        ``estimate_private``."""
        if len(reconstructions) == 1:
            return self.estimate_private(reconstructions[0], soft_targets[0], public)
        pivot = self._pivot(public).to(reconstructions)
        mixtures = unflip_estimate(reconstructions, soft_targets, public.class_means, pivot)
        estimate = self.unmixed(mixtures, soft_targets, public)
        first, _ = coefficient_moments(int(self.ratio), self.params["upper_bound"],
                                       self.params["lower_bound"])
        for _ in range(REFINEMENTS):
            expected = refined_expectation(soft_targets, public.class_means, estimate, first)
            mixtures = unflip(reconstructions, expected, pivot)
            estimate = self.unmixed(mixtures, soft_targets, public)
        return estimate

    def _pivot(self, public: PublicKnowledge) -> torch.Tensor:
        """What the flips mirror about, in the normalised space."""
        if self.params["flip_center"] == "half":
            return public.normalize(torch.full_like(public.center, 0.5))
        return public.center
