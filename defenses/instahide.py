"""InstaHide (Huang et al. 2020), as in GradAttack: MixUp of k images, then a random sign
flip of every pixel.

The mixing is ``mixup``'s (k - 1 partners from the user's own data, Dirichlet(3, 1, ..., 1)
coefficients within bounds, labels mixed alike). The sign flip acts on the image encoded in
[-1, 1] as in the InstaHide paper, which in pixel space maps a flipped pixel x to 1 - x
(GradAttack flips around the dataset mean instead). A fresh mask is drawn per image from
the generator. The ratio is k.
"""

from __future__ import annotations

import torch

from defenses.base import DrawSamples
from defenses.mixup import MixUp, mix


def flip_signs(images: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """Flip each pixel's sign in the [-1, 1] encoding with probability 1/2."""
    flips = torch.randint(2, images.shape, generator=generator).to(images.device).bool()
    return torch.where(flips, 1 - images, images)


class InstaHide(MixUp):
    name = "instahide"
    ratio_meaning = "k, the number of images mixed before the random sign flip"

    def transform_batch(self, images: torch.Tensor, labels: torch.Tensor, num_classes: int,
                        generator: torch.Generator | None = None,
                        draw: DrawSamples | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        mixed, targets = mix(images, labels, num_classes, int(self.ratio),
                             self.params["upper_bound"], self.params["lower_bound"],
                             generator, draw)
        return flip_signs(mixed, generator), targets
