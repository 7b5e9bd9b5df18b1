"""The report's one-screen answer: for each dataset, the defense setting whose attack (the
strongest of the run, when given its rows) leaks least within each communication budget
(upload as a share of the undefended dense gradient), among settings known to keep utility
(final accuracy at least 90% of no defense's).

A setting the run did not train has unknown utility: it is shown as such and never picked,
since a defense that destroys learning would otherwise win every budget. Only a run that
trained nothing at all ranks on privacy alone (every row then says "utility unknown").

A setting whose attack does not clear the guessing floor (the higher of the public mean image
and the class-mean image of the recovered label, over runs: ``report.stats.floor_verdict``)
is "no better than guessing": the attack failed there, which does not show that the defense
protects, so it is never ranked least leaking, and neither is one with too few runs to tell;
each row lists those that fit."""

from __future__ import annotations

import math

import pandas as pd

from report.plots import base_defense, final_rows
from report.stats import (
    NO_BETTER,
    TOO_FEW,
    floor_verdict,
    format_mean_ci,
    format_run_mean_ci,
    run_table,
)
from report.strongest import attack_label

# Upload budgets as a share of the dense float32 gradient, loosest first.
BUDGETS = (1.0, 0.5, 0.25, 0.1)
UTILITY_FLOOR = 0.9  # share of no defense's final accuracy a setting must keep
UNKNOWN = "utility unknown"


def _settings(privacy: pd.DataFrame, utility: pd.DataFrame | None) -> pd.DataFrame:
    """One row per (defense, ratio): leakage, upload share and final accuracy."""
    rows = []
    accuracy: dict = {}  # (defense, ratio) -> final test accuracy per seed
    if utility is not None and not utility.empty:
        accuracy = dict(list(final_rows(utility).groupby(["defense", "ratio"])["test_acc"]))
    for (defense, ratio), group in privacy.groupby(["defense", "ratio"], sort=True):
        runs = run_table(group)
        mean, n = float(runs["psnr"].mean()), len(runs)
        final = accuracy.get((base_defense(defense), ratio))  # members train as the setting
        acc = math.nan if final is None else float(final.mean())
        rows.append({"defense": defense, "ratio": ratio, "psnr_mean": mean, "n": n,
                     "by": attack_label(group),
                     "psnr": format_run_mean_ci(group, "psnr", ".2f"),
                     "ssim": format_run_mean_ci(group, "ssim", ".3f"),
                     "share": float((group["sent_bytes"] / group["dense_bytes"]).mean()),
                     "test_acc": acc, "floor_verdict": floor_verdict(group),
                     "test_acc_text": UNKNOWN if final is None
                     else format_mean_ci(final, ".3f")})
    return pd.DataFrame(rows)


def least_leaking_by_upload(privacy: pd.DataFrame,
                            utility: pd.DataFrame | None) -> list[dict[str, str]]:
    """Rows (attack, budget, best setting and its numbers) for one dataset's results,
    attacks on the initial model only."""
    first = privacy[privacy["model_round"] == privacy["model_round"].min()]
    trained = utility is not None and not utility.empty
    min_accuracy = math.nan
    if trained:
        undefended = final_rows(utility).query("defense == 'none'")["test_acc"]
        min_accuracy = UTILITY_FLOOR * undefended.mean() if len(undefended) else math.nan
    rows = []
    for attack, part in first.groupby("attack", sort=True):
        settings = _settings(part, utility).dropna(subset=["psnr_mean"])
        known = settings["test_acc"].notna()
        keeps_utility = (known & ~(settings["test_acc"] < min_accuracy)) if trained else ~known
        guess = (f"{format_run_mean_ci(part, 'floor_psnr', '.2f')} / "
                 f"{format_run_mean_ci(part, 'class_floor_psnr', '.2f')}")
        # unranked: no better than guessing, or too few runs to tell (unknown floor: old
        # tables without the floor columns are ranked as before)
        at_floor = settings["floor_verdict"].isin([NO_BETTER, TOO_FEW])
        for budget in BUDGETS:
            fits = settings[(settings["share"] <= budget + 1e-9) & keeps_utility]
            guessing = fits[at_floor.loc[fits.index]]
            fits = fits[~at_floor.loc[fits.index]]
            row = {"attack": str(attack), "budget": f"<= {budget:.0%} of dense",
                   "floor": guess,
                   "at_floor": ", ".join(f"{d} {r:g}" for d, r in
                                         zip(guessing["defense"], guessing["ratio"],
                                             strict=True)) or "-"}
            if fits.empty:
                none = "none shown above the floor" if len(guessing) else "none fits"
                rows.append({**row, "defense": none, "ratio": "", "psnr": "",
                             "ssim": "", "upload": "", "test_acc": "", "n": ""})
                continue
            best = fits.sort_values(["psnr_mean", "share"]).iloc[0]
            rows.append({**row, "attack": best["by"],
                         "defense": str(best["defense"]), "ratio": f"{best['ratio']:g}",
                         "psnr": best["psnr"], "ssim": best["ssim"],
                         "upload": f"{best['share']:.0%}",
                         "test_acc": best["test_acc_text"],
                         "n": str(best["n"])})
    return rows
