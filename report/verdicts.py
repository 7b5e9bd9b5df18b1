"""The verdicts as data: ``results/verdicts.csv``, one row per verdict.

A verdict is one threat model's setting (``report.strongest.SETTING``: dataset, protocol,
server capability, label knowledge, defense, ratio, model round) judged by its strongest
attack, chosen without looking at the runs it is judged on. Every interval is over
independent attack runs (``report.stats``); both floors (the public dataset-mean image and
the class-mean image of the recovered label) and the success shares come with it. The
report's verdict tables are rendered from this table, and a researcher can load it with
pandas.

Usage::

    python -m report.verdicts --privacy results/privacy.csv --out results/verdicts.csv
"""

from __future__ import annotations

import argparse
import math
from typing import Any

import pandas as pd

from dgp.io import write_atomically
from report.privacy_table import load_privacy
from report.stats import (
    MIN_SAMPLES,
    REBUILT_SSIM,
    SUCCESS_MARGIN_DB,
    candidates,
    floor_verdict,
    mean_ci,
    run_table,
    success_counts,
    unit_values,
    units_name,
    wilson,
)
from report.strongest import (
    SELECTION,
    SETTING,
    STRONGEST_NAMES,
    fold_column,
    tuned_name,
    with_strongest,
)

VERDICT_COLUMNS = [
    *SETTING, "strongest_attack", "selection", "candidates", "attacks_tried", "n_runs",
    "n_units", "unit",
    "psnr_mean", "psnr_low", "psnr_high", "ssim_mean", "ssim_low", "ssim_high",
    "floor_psnr", "class_floor_psnr", "floor_ssim", "class_floor_ssim",
    "margin_psnr_mean", "margin_psnr_low", "margin_psnr_high",
    "success_share", "success_low", "success_high",
    "rebuilt_share", "rebuilt_low", "rebuilt_high",
    "verdict", "upper_bound_attack", "upper_bound_psnr",
]


def _interval(runs: pd.DataFrame, column: str) -> tuple[float, float, float]:
    """Mean and 95 % t-interval over the independent units (NaN bounds below MIN_SAMPLES)."""
    mean, half, n = mean_ci(pd.Series(unit_values(runs, column)))
    if n < MIN_SAMPLES or math.isnan(half):
        return mean, math.nan, math.nan
    return mean, mean - half, mean + half


def _chosen(rows: pd.DataFrame) -> str:
    """'ig_adaptive', or by fold (seed, or run with a single seed) where the choice
    differs, the most chosen first: 'idlg_adaptive (seeds 1, 2, 3), ig_adaptive (seed 0)';
    'ig_adaptive (tuned)' for an attack run with parameters tuned on public data."""
    key = fold_column(rows)
    per_fold = rows.groupby(key)["source_attack"].first()
    per_fold = per_fold.map(lambda attack: tuned_name(rows, str(attack)))
    if per_fold.nunique() == 1:
        return str(per_fold.iloc[0])
    word = "seed" if key == "seed" else "run"
    folds = per_fold.groupby(per_fold).groups
    ordered = sorted(folds.items(), key=lambda item: (-len(item[1]), item[0]))
    return ", ".join(
        f"{attack} ({word}{'s' if len(ids) > 1 else ''} {', '.join(map(str, ids))})"
        for attack, ids in ordered)


def _tried(rows: pd.DataFrame) -> str:
    """Every attack the verdict's strongest was chosen from, comma-separated."""
    if "tried" not in rows or rows["tried"].isna().all():
        return ", ".join(sorted(rows["source_attack"].dropna().unique()))
    return str(rows["tried"].dropna().iloc[0])


def _upper_bound(privacy: pd.DataFrame, key: tuple) -> tuple[str, float]:
    """The best labels-given attack of the same setting with the labels given instead: an
    upper bound beside the verdict, never a candidate."""
    setting = dict(zip(SETTING, key, strict=True))
    given = privacy[~privacy["attack"].isin(STRONGEST_NAMES) & (privacy["labels"] == "given")]
    for column, value in setting.items():
        if column != "labels":
            given = given[given[column] == value]
    if given.empty:
        return "", math.nan
    means = given.groupby("attack")["psnr"].mean()
    return str(means.idxmax()), float(means.max())


def interval_text(row: pd.Series, metric: str, spec: str, with_n: bool = True) -> str:
    """A verdict row's ``metric`` as 'mean [low, high]', or the mean alone (with its n when
    ``with_n``) where there is no interval; 'n/a' without a mean."""
    mean, low, high = row[f"{metric}_mean"], row[f"{metric}_low"], row[f"{metric}_high"]
    if pd.isna(mean):
        return "n/a"
    if pd.isna(low):
        return f"{mean:{spec}} (n={int(row['n_units'])})" if with_n else f"{mean:{spec}}"
    return f"{mean:{spec}} [{low:{spec}}, {high:{spec}}]"


def count_text(row: pd.Series, name: str) -> str:
    """A verdict row's success or rebuilt share as 'count/n'; 'n/a' without one."""
    share = row[f"{name}_share"]
    if pd.isna(share):
        return "n/a"
    return f"{round(share * row['n_runs'])}/{int(row['n_runs'])}"


def verdict_row(rows: pd.DataFrame, key: tuple, privacy: pd.DataFrame) -> dict[str, Any]:
    """One verdict: a setting's strongest rows summarised over its runs."""
    runs = run_table(rows)
    succeeded, rebuilt, n = success_counts(runs)
    row: dict[str, Any] = dict(zip(SETTING, key, strict=True))
    row.update({"strongest_attack": _chosen(rows), "selection": SELECTION,
                "candidates": candidates(rows), "attacks_tried": _tried(rows),
                "n_runs": len(runs),
                "n_units": len(unit_values(runs, "psnr")), "unit": units_name(runs)})
    for metric in ("psnr", "ssim", "margin_psnr"):
        mean, low, high = _interval(runs, metric)
        row.update({f"{metric}_mean": mean, f"{metric}_low": low, f"{metric}_high": high})
    for column in ("floor_psnr", "class_floor_psnr", "floor_ssim", "class_floor_ssim"):
        row[column] = float(runs[column].mean())
    for name, count in (("success", succeeded), ("rebuilt", rebuilt)):
        share, low, high = wilson(count, n)
        row.update({f"{name}_share": share, f"{name}_low": low, f"{name}_high": high})
    row["verdict"] = floor_verdict(rows) or "n/a"
    row["upper_bound_attack"], row["upper_bound_psnr"] = _upper_bound(privacy, key)
    return row


def verdict_table(privacy: pd.DataFrame) -> pd.DataFrame:
    """Every verdict of the results (``privacy`` as ``report.render.load_privacy`` reads
    it), one row each, in ``VERDICT_COLUMNS`` order."""
    table = with_strongest(privacy)
    strongest = table[table["attack"].isin(STRONGEST_NAMES)]
    rows = [verdict_row(group, key, table)
            for key, group in strongest.groupby(SETTING, sort=True, dropna=False)]
    return pd.DataFrame(rows, columns=VERDICT_COLUMNS)


def only_attacks(privacy: pd.DataFrame, attacks: list[str]) -> pd.DataFrame:
    """The rows of ``attacks``; a name with no rows is an error, not an empty verdict."""
    missing = sorted(set(attacks) - set(privacy["attack"]))
    if missing:
        raise ValueError(f"no rows of {', '.join(missing)} in the privacy table "
                         f"(it has {', '.join(sorted(privacy['attack'].unique()))})")
    return privacy[privacy["attack"].isin(attacks)]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m report.verdicts",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--privacy", required=True, help="per-image results CSV")
    parser.add_argument("--out", required=True, help="verdicts CSV to write")
    parser.add_argument("--attacks", help=(
        "comma-separated: judge each setting by these attacks only (the verdicts a grid "
        "without the others would print; a tuned attack counts under its name)"))
    args = parser.parse_args(argv)
    privacy = load_privacy(args.privacy)
    if args.attacks:
        try:
            privacy = only_attacks(privacy, args.attacks.split(","))
        except ValueError as error:
            parser.error(f"--attacks: {error}")
    table = verdict_table(privacy)
    write_atomically(args.out, lambda tmp: table.to_csv(tmp, index=False))
    print(f"{len(table)} verdicts (success: {SUCCESS_MARGIN_DB:g} dB over the higher floor; "
          f"rebuilt: SSIM >= {REBUILT_SSIM:g}) -> {args.out}")


if __name__ == "__main__":
    main()
