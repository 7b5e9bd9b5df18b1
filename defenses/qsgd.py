"""QSGD (Alistarh et al. 2017): unbiased stochastic quantization of each tensor.

Per tensor v with L2 norm ||v|| and s levels, entry i is sent as
``||v|| * sign(v_i) * l_i / s`` where ``l_i`` is ``floor(s |v_i| / ||v||)`` rounded up with
probability equal to the remainder, so E[Q(v)] = v. The ratio is the bits per entry,
sign included: ``s = 2**(bits - 1) - 1`` levels, so 2 bits give the ternary {-1, 0, 1}
scale. On the wire: ``bits`` per entry plus one float32 norm per tensor (no entropy coding).
Unbiased, so no error feedback by default.
"""

from __future__ import annotations

import torch

from defenses.base import Defense, SharedGradient, UserBatch, dense

MAX_BITS = 16


def levels_for_bits(bits: int) -> int:
    """Quantization levels s of a ``bits``-wide code (one bit is the sign)."""
    return 2 ** (bits - 1) - 1


def quantize(v: torch.Tensor, levels: int, generator: torch.Generator | None) -> torch.Tensor:
    norm = v.norm()
    if norm == 0:
        return torch.zeros_like(v)
    scaled = v.abs() / norm * levels
    floor = scaled.floor()
    up = torch.rand(v.shape, generator=generator, dtype=v.dtype, device=v.device) < (scaled
                                                                                     - floor)
    return norm * torch.sign(v) * (floor + up) / levels


class QSGD(Defense):
    name = "qsgd"
    family = "quantization"
    ratio_meaning = "bits per entry, sign included (s = 2^(bits-1) - 1 levels)"

    @classmethod
    def ratio_error(cls, ratio, params):
        if ratio != int(ratio) or not 2 <= ratio <= MAX_BITS:
            return f"defense {cls.name!r} needs an integer ratio (bits) in [2, {MAX_BITS}], " \
                   f"got {ratio}"
        return None

    def apply(self, gradients: list[torch.Tensor], generator: torch.Generator | None = None,
              batch: UserBatch | None = None) -> SharedGradient:
        levels = levels_for_bits(int(self.ratio))
        return dense([quantize(g, levels, generator) for g in gradients],
                     bits_per_value=int(self.ratio), side_bytes=4 * len(gradients))
