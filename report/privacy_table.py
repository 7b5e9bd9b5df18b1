"""The per-image results table (results/privacy.csv) as the report reads it: joined with
its wall times, checked by column name, each ADGP member's rows under their own name."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from dgp.columns import BUDGET_COLUMNS, PRIVACY_KEYS
from dgp.metrics import IMAGE_METRICS
from report.plots import MEMBER_SUFFIX
from report.threat import with_protocol

REQUIRED_COLUMNS = [
    "dataset", "defense", "ratio", "attack", "seed", *IMAGE_METRICS, "lpips",
    "label_acc", "status", "sent_bytes", "compression", "device", "image",
    "notes",
]


def load_privacy(path: str | Path, timings: str | Path | None = None) -> pd.DataFrame:
    """Read the per-image CSV (joined with its wall times when given) and fail early, by
    column name, if it is not the expected table."""
    table = pd.read_csv(path)
    if "role" not in table.columns:  # tables from before roles: every row is one user's
        table["role"] = "user"
    # Tables without attacks on trained models: every row attacked the initial model.
    rounds = table["model_round"] if "model_round" in table.columns else 0
    table["model_round"] = pd.Series(rounds, index=table.index).fillna(0).astype(int)
    if timings is not None:
        times = pd.read_csv(timings)[PRIVACY_KEYS + ["attack_seconds"]]
        table = table.drop(columns=["attack_seconds"], errors="ignore").merge(
            times, on=PRIVACY_KEYS, how="left")
    if "attack_seconds" not in table.columns:
        table["attack_seconds"] = math.nan
    for column in ("psnr_shared", "psnr_tolerant"):  # tables from before these columns
        if column not in table.columns:
            table[column] = table["psnr"]
    for column in ("floor_psnr", "floor_ssim", "start_psnr", *BUDGET_COLUMNS):  # unknown in
        # older tables
        if column not in table.columns:
            table[column] = math.nan
    table["defense"] = table["defense"].where(table["role"] != "member",
                                              table["defense"] + MEMBER_SUFFIX)
    missing = [c for c in REQUIRED_COLUMNS if c not in table.columns]
    if missing:
        raise ValueError(f"{path}: missing columns {', '.join(missing)}")
    for column in ["dataset", "defense", "attack", "status", "device", "image", "notes"]:
        table[column] = table[column].astype("string")
    return with_protocol(table)
