"""No defense: the raw gradient is shared (the undefended baseline)."""

from __future__ import annotations

from dgp.defense import Defense


class NoDefense(Defense):
    name = "none"
    family = "none"
    ratio_meaning = "unused (always 0)"
    example_ratio = 0

    @classmethod
    def ratio_error(cls, ratio, params):
        return None if ratio == 0 else f"defense 'none' takes only ratio 0, got {ratio}"
