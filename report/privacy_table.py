"""The per-image results table (results/privacy.csv) as the report reads it: joined with
its wall times, checked by column name, a follower role's rows under the name its
defense gives them (``Defense.setting_name``: 'adgp (member)')."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from defenses import DEFENSES
from dgp.columns import COLUMNS, PRIVACY_KEYS, TIMING_COLUMNS

# Every column the privacy job writes, but the wall times (in the timing CSV).
REQUIRED_COLUMNS = [c for c in COLUMNS if c not in TIMING_COLUMNS["privacy"]]
TEXT_COLUMNS = ["dataset", "defense", "attack", "status", "device", "image", "notes"]


def load_privacy(path: str | Path, timings: str | Path | None = None) -> pd.DataFrame:
    """Read the per-image CSV (joined with its wall times when given) and fail early, by
    column name, if it is not the table the privacy jobs write."""
    table = pd.read_csv(path)
    missing = [c for c in REQUIRED_COLUMNS if c not in table.columns]
    if missing:
        raise ValueError(f"{path}: missing columns {', '.join(missing)}: not a privacy.csv "
                         "of this version (rerun the workflow to regenerate it)")
    if timings is not None:
        times = pd.read_csv(timings)[PRIVACY_KEYS + ["attack_seconds"]]
        table = table.drop(columns=["attack_seconds"], errors="ignore").merge(
            times, on=PRIVACY_KEYS, how="left")
    if "attack_seconds" not in table.columns:
        table["attack_seconds"] = math.nan
    table["defense"] = [DEFENSES[d].setting_name(r) if d in DEFENSES else d
                        for d, r in zip(table["defense"], table["role"], strict=True)]
    for column in TEXT_COLUMNS:
        table[column] = table[column].astype("string")
    return table
