"""Means with 95% t-intervals, as every report table shows them."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats


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


def format_mean_ci(values: pd.Series, spec: str) -> str:
    """``mean ± ci`` (``±`` only when there are two values or more), ``n/a`` if all NaN."""
    mean, half, n = mean_ci(values)
    if n == 0:
        return "n/a"
    if n == 1 or math.isnan(half):
        return format(mean, spec)
    return f"{mean:{spec}} ± {half:{spec}}"
