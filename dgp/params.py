"""Typed, range-checked plugin parameters (attacks and defenses declare theirs with these).

A config entry's parameters are checked before any job runs, so that ``iterations: -5`` or
``lr: -0.1`` stops the workflow with a message naming the key, not a job hours later.
Kept free of torch: validating a config needs only these declarations.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Param:
    """One parameter: its default, type (int, float, bool or str), and allowed values.

    ``low``/``high`` bound numbers (inclusive unless ``low_open``/``high_open``);
    ``choices`` lists the allowed strings.
    """

    default: Any
    kind: type
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    choices: tuple[str, ...] = ()
    doc: str = ""

    def error(self, value: Any) -> str | None:
        """Why ``value`` is not allowed, or None."""
        if self.kind is bool:
            return None if isinstance(value, bool) else f"must be true or false, got {value!r}"
        if self.kind is str:
            if self.choices and value not in self.choices:
                return f"must be one of {', '.join(self.choices)}, got {value!r}"
            return None if isinstance(value, str) else f"must be a string, got {value!r}"
        if isinstance(value, bool) or not isinstance(value, int | float):
            return f"must be a number, got {value!r}"
        if self.kind is int and value != int(value):
            return f"must be an integer, got {value!r}"
        if not math.isfinite(value) or not self._in_range(value):
            return f"must be {self.range_text()}, got {value!r}"
        return None

    def _in_range(self, value: float) -> bool:
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            return False
        return self.high is None or (value < self.high if self.high_open else value <= self.high)

    def range_text(self) -> str:
        """The allowed range in words, e.g. 'an integer >= 1' or 'a number in (0, 1]'."""
        what = "an integer" if self.kind is int else "a number"
        if self.low is not None and self.high is not None:
            left, right = "(" if self.low_open else "[", ")" if self.high_open else "]"
            return f"{what} in {left}{self.low:g}, {self.high:g}{right}"
        if self.low is not None:
            return f"{what} {'>' if self.low_open else '>='} {self.low:g}"
        if self.high is not None:
            return f"{what} {'<' if self.high_open else '<='} {self.high:g}"
        return f"{what} (finite)"


def default_values(declared: dict[str, Param]) -> dict[str, Any]:
    """Each declared parameter's default, by name (a plugin class's ``defaults``)."""
    return {name: p.default for name, p in declared.items()}


def checked_params(owner: str, declared: dict[str, Param],
                   given: dict[str, Any]) -> dict[str, Any]:
    """The defaults updated with ``given``; unknown names and bad values raise ValueError."""
    unknown = set(given) - set(declared)
    if unknown:
        raise ValueError(f"{owner} has no parameter(s) {sorted(unknown)}; "
                         f"known: {sorted(declared) or 'none'}")
    for name, value in given.items():
        problem = declared[name].error(value)
        if problem:
            raise ValueError(f"{owner} parameter {name} {problem}")
    return {**default_values(declared), **given}


@dataclass(frozen=True)
class FloatRange:
    """A number's search range when an attack is tuned (``Attack.tuning_space``): on a log
    scale where the parameter matters by its order of magnitude (a learning rate), else
    linear (a weight whose useful values include 0)."""

    low: float
    high: float
    log: bool = False

    def widened(self, value: float) -> FloatRange:
        """The range stretched to hold ``value`` (a configured value is tried first, so it
        must lie inside); a log range cannot hold a value <= 0."""
        if self.log and value <= 0:
            raise ValueError(f"a log-scale range cannot hold {value!r}")
        return FloatRange(min(self.low, value), max(self.high, value), self.log)


@dataclass(frozen=True)
class Choice:
    """A categorical search space: the values to try."""

    values: tuple[Any, ...]

    def widened(self, value: Any) -> Choice:
        """The choices plus ``value`` if it is not among them."""
        return self if value in self.values else Choice((*self.values, value))


Space = FloatRange | Choice


def tuning_space_error(declared: dict[str, Param], space: dict[str, Space]) -> str | None:
    """Why ``space`` does not fit the parameters ``declared``, or None: every name must be
    a declared number (or, for a ``Choice``, any parameter) and every end of a range, and
    every choice, a valid value; a log range must stay above 0."""
    for name, spec in space.items():
        if name not in declared:
            return f"tunes {name!r}, which is no parameter"
        param = declared[name]
        values = spec.values if isinstance(spec, Choice) else (spec.low, spec.high)
        for value in values:
            problem = param.error(value)
            if problem:
                return f"tunes {name!r} over a value that {problem}"
        if isinstance(spec, FloatRange) and (spec.low > spec.high or
                                             (spec.log and spec.low <= 0)):
            return f"tunes {name!r} over an empty or non-positive log range {spec}"
    return None
