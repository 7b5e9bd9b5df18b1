"""The types that cross layers: what a user shares (``SharedGradient``, built by ``dense``
for a gradient sent entry by entry), what a defense may read of the user's side
(``UserBatch``, ``DrawSamples``) and what a server knows of the data distribution
(``PublicKnowledge``). The core (communication, training, jobs) and the plugins (defenses,
attacks) both use them, so they live here, below both.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from dgp.lazy import torch

if TYPE_CHECKING:
    from torch import nn

# Draws ``count`` more (pixel-space images, labels) from the user's own data, e.g. as mixing
# partners; seeded by the caller.
DrawSamples = Callable[[int], tuple["torch.Tensor", "torch.Tensor"]]  # text: no torch at import


@dataclass
class SharedGradient:
    """What leaves the user after the defense.

    ``tensors`` is the gradient as the server reconstructs it (zeros where nothing was sent);
    ``masks`` marks the transmitted entries per tensor (None: every entry was sent), which is
    what the communication cost is counted from; ``bits_per_value`` is the width of one
    transmitted value; ``positions_known`` says the server already knows the sent positions
    (an aligned mask), so no index set travels with the values; ``side_bytes`` counts extra
    payload such as a quantizer's per-tensor scale, whose values ``side`` holds (public to
    the server: a defense-aware attacker reads them).
    """

    tensors: list[torch.Tensor]
    masks: list[torch.Tensor | None]
    bits_per_value: int = 32
    positions_known: bool = False
    side_bytes: int = 0
    side: dict[str, list[float]] = field(default_factory=dict)


@dataclass
class PublicKnowledge:
    """What the server knows about the data distribution, from public data, in the
    normalised space the attacks work in: the per-class mean images ``class_means``
    [K, C, H, W] (a class absent from the public sample: the overall mean), the overall
    ``mean`` [1, C, H, W], ``center`` [1, C, 1, 1] (the encoding's origin, the pixel value
    InstaHide's default flip mirrors about) and the public normalisation maps (pixel space
    [0, 1] to normalised and back), for protocols defined in pixel space. An attack that
    trains on public data (``Attack.public_training_images``) also gets the normalised
    training images themselves (``images`` [N, C, H, W], ``labels`` [N]); None for the
    others, so that no job loads images it does not use."""

    class_means: torch.Tensor
    mean: torch.Tensor
    center: torch.Tensor
    normalize: Callable[[torch.Tensor], torch.Tensor]
    denormalize: Callable[[torch.Tensor], torch.Tensor]
    images: torch.Tensor | None = None
    labels: torch.Tensor | None = None

    @classmethod
    def from_samples(cls, images: torch.Tensor, labels: torch.Tensor, num_classes: int,
                     center: torch.Tensor, normalize: Callable[[torch.Tensor], torch.Tensor],
                     denormalize: Callable[[torch.Tensor], torch.Tensor]) -> PublicKnowledge:
        """From normalised public ``images`` with their ``labels``."""
        mean = images.mean(0, keepdim=True)
        class_means = mean.repeat(num_classes, 1, 1, 1)
        for label in labels.unique().tolist():
            class_means[label] = images[labels == label].mean(0)
        return cls(class_means, mean, center, normalize, denormalize)


@dataclass
class UserBatch:
    """The user's side of the gradient computation, for defenses that need more than the
    gradient (Soteria reads the model's representation of the inputs)."""

    model: nn.Module
    inputs: torch.Tensor  # normalised model inputs the gradient was computed on


def dense(tensors: list[torch.Tensor], **fields: Any) -> SharedGradient:
    """A gradient sent entry by entry (no index set)."""
    return SharedGradient(tensors, [None] * len(tensors), **fields)


def summed(uploads: list[SharedGradient]) -> SharedGradient:
    """What a server under secure aggregation sees of several users' uploads: their sum.
    An entry is marked sent where any user sent it (the union of the masks: a sum is zero
    only where nobody sent, almost surely), and the side values (a quantiser's norms) are
    the users' in order; the format is the first upload's."""
    first = uploads[0]
    tensors = [sum(parts) for parts in zip(*(u.tensors for u in uploads), strict=True)]
    masks = []
    for parts in zip(*(u.masks for u in uploads), strict=True):
        masks.append(None if any(m is None for m in parts)
                     else torch.stack([m.bool() for m in parts]).any(0).to(parts[0].dtype))
    side = {key: [v for u in uploads for v in u.side.get(key, [])] for key in first.side}
    return SharedGradient(tensors, masks, first.bits_per_value, first.positions_known,
                          first.side_bytes, side)
