"""The best iterate of a run, judged by the objective the run ends with.

Why: an annealed run (``UserView.phase``: soft band masks for the first half, the exact hard
masks after) minimises different functions in its two phases, and a soft-mask value says
nothing about the hard-mask one: a soft iterate can score far below every hard iterate and
still match the shared update worse. So the soft phase's best (by its own value) is held
aside and re-scored under the hard objective whenever the run must name its best so far (a
budget checkpoint, the switch to hard masks, the end); only hard-objective values compete.
A run whose view does not change compares its values directly.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from dgp.attack import UserView

State = TypeVar("State")


@dataclass
class Scored(Generic[State]):
    """An iterate (what the attack would return), its objective value and the phase of the
    objective that chose it."""

    loss: float
    state: State
    phase: str


class BestIterate(Generic[State]):
    """Keeps a run's best iterate under the objective of the run's last phase.

    ``rescore(state)`` evaluates a held iterate's objective; it is called inside
    ``view.final()``, so it gives the hard-objective value."""

    def __init__(self, view: UserView | None, rescore: Callable[[State], float],
                 start: State) -> None:
        self.view, self.rescore = view, rescore
        self.best: Scored[State] = Scored(math.inf, start, "")
        self.pending: Scored[State] | None = None  # the soft phase's best, not yet re-scored

    def offer(self, loss: float, state: Callable[[], State]) -> None:
        """An iterate whose objective, under the view's current phase, is ``loss``;
        ``state()`` copies it, called only for an iterate that is kept."""
        if not math.isfinite(loss):
            return
        phase = self.view.phase if self.view is not None else ""
        if phase == "soft":
            if self.pending is None or loss < self.pending.loss:
                self.pending = Scored(loss, state(), phase)
            return
        self.settle()
        if loss < self.best.loss:
            self.best = Scored(loss, state(), phase)

    def settle(self) -> Scored[State]:
        """The best so far by the hard objective, the soft phase's best re-scored first."""
        if self.pending is not None:
            with self.view.final():
                loss = self.rescore(self.pending.state)
            if loss < self.best.loss:  # False for a non-finite loss
                self.best = Scored(loss, self.pending.state, self.pending.phase)
            self.pending = None
        return self.best
