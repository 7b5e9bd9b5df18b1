"""The table of attacks tuned on public data (results/tuning.csv, from ``jobs.tune``).

One row per tuning job: the setting, the attack, the public PSNR of its configured and of
its tuned parameters (the mean over the attacker's own training images, never the users'),
the tuned values and the trials run. The gain is on the public images the study chose on;
the privacy tables give the tuned attack's PSNR on the users' images.
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from dgp.columns import TUNED_PARAM_PREFIX


def _psnr(value: Any) -> str:
    return "diverged" if pd.isna(value) or not math.isfinite(value) else f"{value:.2f}"


def _params(row: pd.Series) -> str:
    """'lr 0.0312, tv_weight 0.0041': the tuned values this attack has (3 significant
    digits)."""
    return ", ".join(f"{column.removeprefix(TUNED_PARAM_PREFIX)} {row[column]:.3g}"
                     for column in row.index
                     if column.startswith(TUNED_PARAM_PREFIX) and not pd.isna(row[column]))


def tuning_rows(table: pd.DataFrame | None) -> list[dict[str, str]]:
    """Display rows of tuning.csv; none when no attack was tuned (no table)."""
    if table is None:
        return []
    rows = []
    for _, row in table.iterrows():
        gain = row["tuned_psnr"] - row["default_psnr"]
        rows.append({
            "setting": f"{row['dataset']} / {row['protocol']} / {row['defense']} "
                       f"{row['ratio']:g}",
            "attack": str(row["attack"]), "default": _psnr(row["default_psnr"]),
            "tuned": _psnr(row["tuned_psnr"]),
            "gain": "n/a" if pd.isna(gain) else f"{gain:+.2f}",
            "params": _params(row),
            "trials": f"{int(row['finished_trials'])} of {int(row['trials'])}"
                      + (f" ({int(row['pruned_trials'])} diverged)"
                         if row["pruned_trials"] else ""),
            "images": str(int(row["images"]))})
    return rows
