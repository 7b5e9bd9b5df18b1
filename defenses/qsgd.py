"""QSGD (Alistarh et al. 2017): unbiased stochastic quantization of each tensor.

Per tensor v with L2 norm ||v|| and s levels, entry i is sent as
``||v|| * sign(v_i) * l_i / s`` where ``l_i`` is ``floor(s |v_i| / ||v||)`` rounded up with
probability equal to the remainder, so E[Q(v)] = v. The ratio is the bits per entry,
sign included: ``s = 2**(bits - 1) - 1`` levels, so 2 bits give the ternary {-1, 0, 1}
scale. On the wire: ``bits`` per entry plus one float32 norm per tensor (no entropy coding).
Unbiased, so no error feedback by default.

Attacker model: the server receives each tensor's norm and every entry's signed level
``L_i``. Given a candidate gradient g, entry i was sent at level L_i with probability
``max(0, 1 - |s g_i / ||v|| - L_i|)`` (the quantiser rounds to one of the two levels around
``s g_i / ||v||``, the nearer one more often; its variance is the familiar
``(||v|| / s)^2 f (1 - f)`` for remainder f), so the exact likelihood of the observation is
a product of these tents: a candidate more than one level away from any sent entry is
impossible. ``observation_nll`` is its negative log (with a linear continuation past the
support, so an optimiser still gets a gradient there); ``constraint_penalty`` asks the
candidate to have the sent norms, which travel exactly.

Under secure aggregation neither fits: the server sees the sum of every user's levels
times its own norm, whose likelihood is a convolution of tents (not modelled), and one norm
per user and tensor. A defense-aware attack of a sum of users is refused (``aggregate_error``).
"""

from __future__ import annotations

from dgp.defense import Defense
from dgp.lazy import torch
from dgp.types import SharedGradient, UserBatch, dense

MAX_BITS = 16
# Below this probability the tent likelihood continues linearly (finite, with a slope).
TENT_FLOOR = 0.01


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
    example_ratio = 4

    @classmethod
    def ratio_error(cls, ratio, params):
        if ratio != int(ratio) or not 2 <= ratio <= MAX_BITS:
            return f"defense {cls.name!r} needs an integer ratio (bits) in [2, {MAX_BITS}], " \
                   f"got {ratio}"
        return None

    @classmethod
    def aggregate_error(cls, users: int) -> str | None:
        if users > 1:
            return (f"defense {cls.name!r} cannot be modelled under a sum of {users} users' "
                    "uploads: its likelihood is that of one user's quantised upload (the "
                    "sum's is a convolution of tents, with one norm per user)")
        return None

    def apply(self, gradients: list[torch.Tensor], generator: torch.Generator | None = None,
              batch: UserBatch | None = None) -> SharedGradient:
        levels = levels_for_bits(int(self.ratio))
        return dense([quantize(g, levels, generator) for g in gradients],
                     bits_per_value=int(self.ratio), side_bytes=4 * len(gradients),
                     side={"norms": [float(g.norm()) for g in gradients]})

    def observation_nll(self, view: list[torch.Tensor],
                        shared: SharedGradient) -> torch.Tensor | None:
        """The quantiser's exact negative log-likelihood per entry (module docstring)."""
        if len(shared.side["norms"]) != len(view):
            raise ValueError(self.aggregate_error(len(shared.side["norms"]) // len(view)))
        levels = levels_for_bits(int(self.ratio))
        total, entries = view[0].new_zeros(()), 0
        for candidate, sent, norm in zip(view, shared.tensors, shared.side["norms"],
                                         strict=True):
            entries += candidate.numel()
            if norm == 0:  # nothing was sent: the candidate should be zero too
                total = total + candidate.pow(2).sum()
                continue
            distance = (candidate * levels / norm - sent.to(candidate.device) * levels / norm)
            total = total + tent_nll(distance.abs()).sum()
        return total / entries

    def constraint_penalty(self, candidate: list[torch.Tensor],
                           shared: SharedGradient) -> torch.Tensor | float:
        """Squared differences of the candidate's tensor norms from the sent ones, relative
        to the sent energy (the norms travel exactly)."""
        norms = shared.side["norms"]
        energy = sum(n * n for n in norms)
        if energy == 0:
            return 0.0
        return sum((c.norm() - n).pow(2) for c, n in zip(candidate, norms, strict=True)) / energy


def tent_nll(distance: torch.Tensor) -> torch.Tensor:
    """-log(1 - d) for level distances d below 1 - TENT_FLOOR, continued along its tangent
    beyond (where the exact likelihood is zero)."""
    edge = 1 - TENT_FLOOR
    inside = -torch.log1p(-distance.clamp(max=edge))
    return inside + (distance - edge).clamp_min(0) / TENT_FLOOR
