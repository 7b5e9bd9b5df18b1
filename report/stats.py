"""Means with 95% t-intervals, as every report table shows them, and the guessing floors.

The unit of every interval is the attack run (one shared update attacked once): the images
one run reconstructs are averaged first, and where runs share a model draw (a trained
checkpoint) the runs of one draw are averaged too, so n counts independent samples."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats

from dgp.columns import iteration_column


def mean_ci(values: pd.Series, tests: int = 1) -> tuple[float, float, int]:
    """Mean, 95% t-interval half-width (NaN when n < 2) and n over the non-NaN values; for
    one of ``tests`` candidates, the Bonferroni-widened interval (level 1 - 0.05 / tests)."""
    x = pd.to_numeric(values, errors="coerce").to_numpy(dtype=float)
    x = x[~np.isnan(x)]
    n = len(x)
    if n == 0:
        return math.nan, math.nan, 0
    if n == 1:
        return float(x[0]), math.nan, 1
    half = stats.t.ppf(1 - 0.025 / tests, n - 1) * x.std(ddof=1) / math.sqrt(n)
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
TOO_FEW = "too few runs"
MIXED = "mixed"  # not clear of the floor on average, but some runs are (bimodal outcomes)
# A run "succeeds" when its images beat the higher floor by this margin on average, and is
# "rebuilt" when their mean SSIM reaches REBUILT_SSIM.
SUCCESS_MARGIN_DB = 3.0
REBUILT_SSIM = 0.9
# The attack run: one shared update attacked once. Its images are not independent samples
# (one optimisation produced them all), so every interval averages them first.
RUN = ["dataset", "protocol", "batch_size", "defense", "ratio", "attack", "model_round", "seed",
       "batch", "role"]
RUN_METRICS = ["psnr", "ssim", "floor_psnr", "floor_ssim", "class_floor_psnr",
               "class_floor_ssim", "margin_psnr", "margin_ssim"]


def _higher_floor(rows: pd.DataFrame, metric: str) -> pd.Series:
    """Per image, the higher of the dataset-mean and the class-mean floor (the dataset mean
    alone where the class-mean floor is unknown)."""
    floor = rows.get(f"floor_{metric}", pd.Series(math.nan, index=rows.index))
    if f"class_floor_{metric}" not in rows:
        return floor
    return pd.concat([floor, rows[f"class_floor_{metric}"]], axis=1).max(axis=1)


def run_table(rows: pd.DataFrame, extra: tuple[str, ...] = ()) -> pd.DataFrame:
    """One row per attack run of ``rows`` (one setting and attack, or a strongest pseudo-
    attack): its images' mean metrics (``RUN_METRICS`` and ``extra``), its margins over the
    higher floor, and the model draw it was attacked on (runs of one draw share the model:
    a trained checkpoint)."""
    rows = rows.assign(margin_psnr=rows["psnr"] - _higher_floor(rows, "psnr"),
                       margin_ssim=rows["ssim"] - _higher_floor(rows, "ssim"))
    for column in RUN_METRICS:
        if column not in rows:
            rows[column] = math.nan
    if "model_draw" not in rows or rows["model_draw"].isna().all():
        rows = rows.assign(model_draw=rows["seed"].astype(str))
    keys = [k for k in RUN if k in rows]
    table = rows.groupby(keys, sort=True, dropna=False).agg(
        {**{m: "mean" for m in dict.fromkeys([*RUN_METRICS, *extra])}, "model_draw": "first"})
    return table.reset_index()


def unit_values(runs: pd.DataFrame, column: str) -> np.ndarray:
    """The independent values of ``column``: one per run, or one per model draw (its runs
    averaged) where runs share a draw."""
    if _shares_draws(runs):
        return runs.groupby(_draw_keys(runs), dropna=False)[column].mean().to_numpy(dtype=float)
    return runs[column].to_numpy(dtype=float)


def _draw_keys(runs: pd.DataFrame) -> list[str]:
    """A model draw is named within its setting (a checkpoint per seed and defense)."""
    return [k for k in RUN if k in runs and k not in ("seed", "batch", "role")] + ["model_draw"]


def _shares_draws(runs: pd.DataFrame) -> bool:
    return bool(runs.duplicated(_draw_keys(runs)).any())


def format_run_mean_ci(rows: pd.DataFrame, metric: str, spec: str) -> str:
    """``mean ± ci`` of ``metric`` over the independent runs of ``rows``, as
    ``format_mean_ci`` writes it."""
    return format_mean_ci(pd.Series(unit_values(run_table(rows, (metric,)), metric)), spec)


def units_name(runs: pd.DataFrame) -> str:
    return "model draws" if _shares_draws(runs) else "runs"


def within_seed_correlation(runs: pd.DataFrame, metric: str = "psnr") -> tuple[float, int]:
    """ICC(1) of the runs' ``metric`` between runs of one seed, pooled over settings (one-way
    ANOVA: each setting's seed means against its runs' spread), and how many settings it
    pools. Why: runs of one seed share the job (and a trained checkpoint, where attacked); a
    value near 0 says they are as independent as runs of different seeds. NaN with no
    setting of two seeds of two runs."""
    runs = runs[np.isfinite(runs[metric])]
    setting = [k for k in RUN if k in runs and k not in ("seed", "batch")]
    between = within = 0.0
    df_between = df_within = settings = 0
    sizes = []
    for _, part in runs.groupby(setting, dropna=False):
        counts = part.groupby("seed")[metric].count()
        if len(counts) < 2 or (counts < 2).any():
            continue
        seed_mean = part.groupby("seed")[metric].transform("mean")
        within += float(((part[metric] - seed_mean) ** 2).sum())
        between += float(((seed_mean - part[metric].mean()) ** 2).sum())
        df_within += len(part) - len(counts)
        df_between += len(counts) - 1
        sizes += counts.tolist()
        settings += 1
    if not settings:
        return math.nan, 0
    ms_between, ms_within = between / df_between, within / df_within
    size = float(np.mean(sizes))
    denominator = ms_between + (size - 1) * ms_within
    return (ms_between - ms_within) / denominator if denominator else math.nan, settings


def wilson(successes: int, n: int, z: float = 1.96) -> tuple[float, float, float]:
    """Share and 95 % Wilson score interval (sound at 0 or n successes, unlike the normal
    approximation)."""
    if n == 0:
        return math.nan, math.nan, math.nan
    share = successes / n
    centre = (share + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(share * (1 - share) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return share, max(0.0, centre - half), min(1.0, centre + half)


def success_counts(runs: pd.DataFrame) -> tuple[int, int, int]:
    """(runs clearing the higher floor by ``SUCCESS_MARGIN_DB``, runs rebuilt, runs)."""
    margin = runs["margin_psnr"].dropna()
    return (int((margin >= SUCCESS_MARGIN_DB).sum()),
            int((runs["ssim"].dropna() >= REBUILT_SSIM).sum()), len(margin))


def candidates(rows: pd.DataFrame) -> int:
    """How many attacks a strongest verdict was chosen from (1 for one attack's rows)."""
    if "candidates" not in rows or rows["candidates"].isna().all():
        return 1
    return int(rows["candidates"].max())


def floor_verdict(rows: pd.DataFrame) -> str | None:
    """Whether a setting's attack beats the guessing floor: the 95 % t-interval, over
    independent runs, of the run's mean ``psnr`` minus the higher of the two floors on the
    same images. "clears the floor" when it lies above 0; ``MIXED`` when it does not but
    some runs clear the floor by ``SUCCESS_MARGIN_DB`` (bimodal outcomes: some images come
    back, others not at all); ``NO_BETTER`` otherwise; ``TOO_FEW`` below ``MIN_SAMPLES``
    independent runs; None for tables without the floor columns. A strongest attack chosen
    from several is judged at the Bonferroni-widened level (``candidates``): choosing on
    other seeds' runs keeps the estimate unbiased, but the judged seeds' values are not
    independent of each other's choices (tests/test_verdicts.py simulates the error rate
    with and without it)."""
    if "floor_psnr" not in rows or rows["floor_psnr"].isna().all():
        return None
    runs = run_table(rows)
    mean, half, n = mean_ci(pd.Series(unit_values(runs, "margin_psnr")), candidates(rows))
    if n < MIN_SAMPLES or math.isnan(half):
        return TOO_FEW
    if mean - half > 0:
        return CLEARS
    return MIXED if success_counts(runs)[0] else NO_BETTER


def verdict_text(rows: pd.DataFrame) -> str:
    """The verdict with its success shares in words, e.g. 'clears the floor (4 of 6 runs
    by 3 dB, 2 rebuilt)'."""
    verdict = floor_verdict(rows)
    if verdict is None:
        return "n/a"
    succeeded, rebuilt, n = success_counts(run_table(rows))
    if verdict == TOO_FEW:
        return f"{TOO_FEW} (n = {n})"
    shares = (f"{succeeded} of {n} runs clear it by {SUCCESS_MARGIN_DB:g} dB, "
              f"{rebuilt} rebuilt (SSIM >= {REBUILT_SSIM:g})")
    if verdict == MIXED:
        return f"{MIXED}: not clear of the floor on average; {shares}"
    return f"{verdict} ({shares})"


RISING_DB = 1.0  # mean gain over the budget's second half that counts as "still rising"
# Above this PSNR (an RMS error of 1 % of the range) a reconstruction is visually exact: a
# difference between two such values is the optimiser's numerical convergence, not privacy.
EXACT_PSNR_DB = 40.0


def second_half_gain(rows: pd.DataFrame) -> float:
    """Mean PSNR gained over the second half of the attack's budget, counted up to
    ``EXACT_PSNR_DB`` (an exact image refined further is not an attack still gaining); NaN
    if unknown."""
    half = iteration_column(0.5)
    if half not in rows:
        return math.nan
    capped = rows[["psnr", half]].clip(upper=EXACT_PSNR_DB)
    gain = (capped["psnr"] - capped[half]).dropna()
    return float(gain.mean()) if len(gain) else math.nan


def reconstructs_exactly(rows: pd.DataFrame) -> bool:
    """Whether the attack rebuilds most images exactly (median PSNR above the ceiling)."""
    return bool(rows["psnr"].median() >= EXACT_PSNR_DB) if len(rows) else False
