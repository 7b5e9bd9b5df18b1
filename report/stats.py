"""Means with 95% t-intervals, as every report table shows them, and the guessing floor."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats

from dgp.columns import budget_column


def mean_ci(values: pd.Series) -> tuple[float, float, int]:
    """Mean, 95% t-interval half-width (NaN when n < 2) and n over the non-NaN values."""
    x = pd.to_numeric(values, errors="coerce").to_numpy(dtype=float)
    x = x[~np.isnan(x)]
    n = len(x)
    if n == 0:
        return math.nan, math.nan, 0
    if n == 1:
        return float(x[0]), math.nan, 1
    half = stats.t.ppf(0.975, n - 1) * x.std(ddof=1) / math.sqrt(n)
    return float(x.mean()), float(half), n


# Values needed before a table or claim shows an interval: a t-interval on two or three
# values (e.g. two seeds: 12.7 standard errors wide) says nothing.
MIN_SAMPLES = 4


def format_mean_ci(values: pd.Series, spec: str) -> str:
    """``mean ± ci`` from ``MIN_SAMPLES`` values on, ``mean (n=k)`` below, ``n/a`` if all
    NaN."""
    mean, half, n = mean_ci(values)
    if n == 0:
        return "n/a"
    if n < MIN_SAMPLES or math.isnan(half):
        return format(mean, spec) if n == 1 else f"{mean:{spec}} (n={n})"
    return f"{mean:{spec}} ± {half:{spec}}"


CLEARS = "clears the floor"
NO_BETTER = "no better than guessing"
TOO_FEW = "too few images"


def floor_verdict(rows: pd.DataFrame) -> str | None:
    """Whether a setting's attack beats the guessing floor, on paired images: the 95%
    t-interval of ``psnr - floor_psnr`` (each reconstruction against the public mean image
    on the same original). "clears the floor" when it lies above 0, ``NO_BETTER`` when not,
    "too few images" below ``MIN_SAMPLES``; None for tables without the floor columns."""
    if "floor_psnr" not in rows or rows["floor_psnr"].isna().all():
        return None
    mean, half, n = mean_ci(rows["psnr"] - rows["floor_psnr"])
    if n < MIN_SAMPLES or math.isnan(half):
        return TOO_FEW
    return CLEARS if mean - half > 0 else NO_BETTER


RISING_DB = 1.0  # mean gain over the budget's second half that counts as "still rising"
# Above this PSNR (an RMS error of 1 % of the range) a reconstruction is visually exact: a
# difference between two such values is the optimiser's numerical convergence, not privacy.
EXACT_PSNR_DB = 40.0


def second_half_gain(rows: pd.DataFrame) -> float:
    """Mean PSNR gained over the second half of the attack's budget, counted up to
    ``EXACT_PSNR_DB`` (an exact image refined further is not an attack still gaining); NaN
    if unknown."""
    half = budget_column(0.5)
    if half not in rows:
        return math.nan
    capped = rows[["psnr", half]].clip(upper=EXACT_PSNR_DB)
    gain = (capped["psnr"] - capped[half]).dropna()
    return float(gain.mean()) if len(gain) else math.nan


def reconstructs_exactly(rows: pd.DataFrame) -> bool:
    """Whether the attack rebuilds most images exactly (median PSNR above the ceiling)."""
    return bool(rows["psnr"].median() >= EXACT_PSNR_DB) if len(rows) else False
