"""ATS (Gao et al., CVPR 2021): train on images passed through a searched transformation
policy, so the gradient describes transformed images.

A policy such as ``"3-1-7+43-18-18"`` lists chains of operations from ATS's table of 50
(operation, magnitude index) entries, ``+`` separating chains: each image goes through one
chain chosen at random, every operation of the chain applied in order (as in ATS's code,
which ignores the listed probabilities). Magnitudes follow ATS's ranges; signed operations
draw their sign per image. All randomness comes from the given generator, so a seed fixes
the policy's choices. The ratio is the share of images transformed (1: all, as in ATS).

Operations act on pixel-space tensors through torchvision: shears and translations about the
top-left corner with black fill, rotation with grey fill, as in ATS's PIL code.

A defense-aware attacker knows the policy but not its draws: of the net translations the
policy's chains can make (``policy_shifts``), it undoes the one that brings the
reconstruction closest to the public mean image of its class (``unshift_estimate``).
"""

from __future__ import annotations

import math

from dgp.defense import Defense
from dgp.lazy import torch
from dgp.params import Param
from dgp.types import DrawSamples, PublicKnowledge

# ATS's table: (operation, magnitude index 0-9), by position.
OPERATIONS: list[tuple[str, int]] = [
    ("invert", 7), ("contrast", 6), ("rotate", 2), ("translateX", 9), ("sharpness", 1),
    ("sharpness", 3), ("shearY", 2), ("translateY", 2), ("autocontrast", 5), ("equalize", 2),
    ("shearY", 5), ("posterize", 5), ("color", 3), ("brightness", 5), ("sharpness", 9),
    ("brightness", 9), ("equalize", 5), ("equalize", 1), ("contrast", 7), ("sharpness", 5),
    ("color", 5), ("translateX", 5), ("equalize", 7), ("autocontrast", 8), ("translateY", 3),
    ("sharpness", 6), ("brightness", 6), ("color", 8), ("solarize", 0), ("invert", 0),
    ("equalize", 0), ("autocontrast", 0), ("equalize", 8), ("equalize", 4), ("color", 5),
    ("equalize", 5), ("autocontrast", 4), ("solarize", 4), ("brightness", 3), ("color", 0),
    ("solarize", 1), ("autocontrast", 0), ("translateY", 3), ("translateY", 3),
    ("autocontrast", 1), ("solarize", 1), ("equalize", 5), ("invert", 0), ("translateY", 3),
    ("autocontrast", 1),
]

# Magnitude at index 9 for the operations that have one (linear from 0, as in ATS).
_TOP = {"shearX": 0.3, "shearY": 0.3, "translateX": 150 / 331, "translateY": 150 / 331,
        "rotate": 30.0, "color": 0.5, "contrast": 0.5, "sharpness": 0.5, "brightness": 0.5}


def magnitude(operation: str, index: int) -> float:
    if operation == "posterize":
        return round(8 - 4 * index / 9)  # bits kept, 8 down to 4
    if operation == "solarize":
        return (256 - 256 * index / 9) / 256  # threshold on [0, 1] pixels
    return _TOP.get(operation, 0.0) * index / 9


def parse_policy(policy: str) -> list[list[int]]:
    """``"3-1-7+43-18-18"`` -> [[3, 1, 7], [43, 18, 18]], checked against the table."""
    try:
        chains = [[int(i) for i in chain.split("-")] for chain in policy.split("+")]
    except ValueError:
        raise ValueError(f"ats policy {policy!r} is not of the form '3-1-7+43-18-18'") from None
    bad = [i for chain in chains for i in chain if not 0 <= i < len(OPERATIONS)]
    if bad:
        raise ValueError(f"ats policy {policy!r}: indices {bad} outside 0..{len(OPERATIONS) - 1}")
    return chains


def _as_uint8(image: torch.Tensor) -> torch.Tensor:
    return (image.clamp(0, 1) * 255).round().to(torch.uint8)


def apply_operation(image: torch.Tensor, operation: str, index: int,
                    sign: float) -> torch.Tensor:
    """One table operation on a [C, H, W] image in [0, 1] (``sign``: +1 or -1)."""
    # torchvision is slow to import; the workflow imports the registry to validate configs
    import torchvision.transforms.v2.functional as F
    m = magnitude(operation, index)
    _, h, w = image.shape
    corner = [0.0, 0.0]
    if operation in ("shearX", "shearY"):
        angle = math.degrees(math.atan(m)) * sign
        shear = [angle, 0.0] if operation == "shearX" else [0.0, angle]
        return F.affine(image, angle=0.0, translate=[0, 0], scale=1.0, shear=shear,
                        interpolation=F.InterpolationMode.BILINEAR, fill=0.0, center=corner)
    if operation in ("translateX", "translateY"):
        shift = round(m * (w if operation == "translateX" else h) * sign)
        move = [shift, 0] if operation == "translateX" else [0, shift]
        return F.affine(image, angle=0.0, translate=move, scale=1.0, shear=[0.0, 0.0],
                        fill=0.0)
    if operation == "rotate":
        return F.rotate(image, m, interpolation=F.InterpolationMode.NEAREST, fill=0.5)
    if operation == "color":
        return F.adjust_saturation(image, 1 + m * sign) if image.shape[0] == 3 else image
    if operation == "contrast":
        return F.adjust_contrast(image, 1 + m * sign)
    if operation == "sharpness":
        return F.adjust_sharpness(image, 1 + m * sign)
    if operation == "brightness":
        return F.adjust_brightness(image, 1 + m * sign)
    if operation == "posterize":
        return F.posterize(_as_uint8(image), int(m)).float() / 255
    if operation == "solarize":
        return F.solarize(image, m)
    if operation == "autocontrast":
        return F.autocontrast(image)
    if operation == "equalize":
        return F.equalize(_as_uint8(image)).float() / 255
    if operation == "invert":
        return F.invert(image)
    raise ValueError(f"unknown ATS operation {operation!r}")


def policy_shifts(policy: str, height: int, width: int,
                  ratio: float) -> list[tuple[int, int]]:
    """Every net (dx, dy) pixel translation a chain of ``policy`` can apply (one per chain
    and sign choice, as ``apply_operation`` rounds them), (0, 0) too when some images stay
    untransformed (ratio < 1) or a chain does not translate."""
    shifts: set[tuple[int, int]] = set() if ratio >= 1 else {(0, 0)}
    for chain in parse_policy(policy):
        options = {(0, 0)}
        for operation, index in (OPERATIONS[position] for position in chain):
            if operation not in ("translateX", "translateY"):
                continue
            size = width if operation == "translateX" else height
            steps = {round(magnitude(operation, index) * size * sign) for sign in (1, -1)}
            options = {(dx + step, dy) if operation == "translateX" else (dx, dy + step)
                       for dx, dy in options for step in steps}
        shifts |= options
    return sorted(shifts)


def _unshift(image: torch.Tensor, dx: int, dy: int, fill: torch.Tensor) -> torch.Tensor:
    """``image`` moved back by (dx, dy); where the content left the frame, ``fill``."""
    out = fill.clone()
    h, w = image.shape[-2:]
    out[..., max(0, -dy):h - max(0, dy), max(0, -dx):w - max(0, dx)] = \
        image[..., max(0, dy):h - max(0, -dy), max(0, dx):w - max(0, -dx)]
    return out


def unshift_estimate(reconstruction: torch.Tensor, class_means: torch.Tensor,
                     shifts: list[tuple[int, int]]) -> torch.Tensor:
    """Per image [C, H, W], the translation of ``shifts`` undone that leaves the kept
    pixels closest (mean squared difference) to ``class_means``' image; pixels lost out of
    the frame are that class mean's."""
    out = []
    for image, mean in zip(reconstruction, class_means, strict=True):
        h, w = image.shape[-2:]
        best, best_error = image, torch.inf
        for dx, dy in shifts:
            kept = image[..., max(0, dy):h - max(0, -dy), max(0, dx):w - max(0, -dx)]
            target = mean[..., max(0, -dy):h - max(0, dy), max(0, -dx):w - max(0, dx)]
            error = float((kept - target).pow(2).mean())
            if error < best_error:
                best, best_error = _unshift(image, dx, dy, mean.to(image)), error
        out.append(best)
    return torch.stack(out)


class TransformationPolicy(Defense):
    name = "ats"
    family = "data"
    estimate_reads_public_data = True  # the class means the untranslated parts come from
    ratio_meaning = "share of images passed through the policy (1 = all, as in ATS)"
    example_ratio = 1.0
    parameters = {"policy": Param("3-1-7+43-18-18", str,
                                  doc="ATS operation indices, '-' within a chain, '+' between")}

    @classmethod
    def ratio_error(cls, ratio, params):
        try:
            parse_policy(params["policy"])
        except ValueError as error:
            return str(error)
        if not 0 <= ratio <= 1:
            return f"defense {cls.name!r} needs 0 <= ratio <= 1 (share transformed), got {ratio}"
        return None

    def transform_batch(self, images: torch.Tensor, labels: torch.Tensor, num_classes: int,
                        generator: torch.Generator | None = None,
                        draw: DrawSamples | None = None,
                        center: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        chains = parse_policy(str(self.params["policy"]))
        out = []
        for image in images:
            chosen = chains[int(torch.randint(len(chains), (1,), generator=generator))]
            signs = torch.randint(2, (len(chosen),), generator=generator) * 2.0 - 1
            if float(torch.rand(1, generator=generator)) < self.ratio:
                for position, sign in zip(chosen, signs.tolist(), strict=True):
                    image = apply_operation(image, *OPERATIONS[position], sign)
            out.append(image.clamp(0, 1))
        return torch.stack(out), labels

    def estimate_private(self, reconstruction: torch.Tensor, soft_targets: torch.Tensor,
                         public: PublicKnowledge) -> torch.Tensor:
        """The policy's translations undone as ``unshift_estimate`` says, judged against
        the public mean image of each image's inferred class."""
        h, w = reconstruction.shape[-2:]
        shifts = policy_shifts(str(self.params["policy"]), h, w, self.ratio)
        means = public.class_means.to(reconstruction)[soft_targets.argmax(-1)]
        return unshift_estimate(reconstruction, means, shifts)
