"""Label recovery tables (results/labels.csv, from ``jobs.labels``).

Per dataset, each defended setting's strongest label rule per batch size, judged against
the guess that reads no gradient (``guess_prior``: the public class frequencies spread over
the batch) on the same batches, the rule chosen on the other half of the batches
(``_strongest``); and each setting's every rule, the oracle (the upper bound)
and both guesses beside it. The unit resampled is one batch (each with its own model
initialisation); n is the number of batches per cell.
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from defenses import DEFENSES
from dgp.labels import LABEL_RULES
from report.stats import CLEARS, MIN_SAMPLES, NO_BETTER, TOO_FEW, format_mean_ci, mean_ci

FLOOR_RULE = "guess_prior"
# What the strongest rule is chosen from: the rules an attacker can run, named for what they
# do (not the oracle, which is handed the labels, nor the guesses, nor ``auto``, which is
# iDLG for one image and ``llg_plus`` for a batch).
ATTACK_RULES = [name for name, rule in LABEL_RULES.items() if rule.candidate]


def label_verdict(rule_rows: pd.DataFrame, floor_rows: pd.DataFrame) -> str:
    """Whether a rule beats the prior guess on the same batches: the 95% t-interval of the
    paired difference lies above 0."""
    paired = rule_rows.set_index("batch")["label_acc"] - floor_rows.set_index("batch")[
        "label_acc"]
    mean, half, n = mean_ci(paired)
    if n < MIN_SAMPLES or math.isnan(half):
        return TOO_FEW
    return CLEARS if mean - half > 0 else NO_BETTER


def _strongest(cell: pd.DataFrame) -> tuple[str, pd.DataFrame] | None:
    """The strongest attack rule of one (setting, size) cell, chosen without peeking: the
    even batches are judged by the rule with the highest mean accuracy on the odd ones, and
    the reverse (two folds of independent batches). Returns the rule name(s) and the judged
    rows; None without attack rules or with a single batch."""
    rules = cell[cell["rule"].isin(ATTACK_RULES)]
    fold = rules["batch"] % 2
    chosen, parts = [], []
    for judged in (0, 1):
        means = rules[fold != judged].groupby("rule")["label_acc"].mean()
        if means.empty or not (fold == judged).any():
            continue
        rule = str(means.sort_index().idxmax())
        chosen.append(rule)
        parts.append(rules[(fold == judged) & (rules["rule"] == rule)])
    if not parts:
        return None
    return " / ".join(dict.fromkeys(chosen)), pd.concat(parts)


SETTING = ["defense", "role", "ratio"]


def _setting_name(defense: str, role: str, ratio: float) -> str:
    name = DEFENSES[defense].setting_name(role)
    return name if defense == "none" else f"{name} {ratio:g}"


def strongest_table(part: pd.DataFrame) -> dict[str, Any]:
    """One row per setting: per batch size, its strongest rule's accuracy and verdict."""
    sizes = sorted(part["batch_size"].unique().tolist())
    rows = []
    for (defense, role, ratio), setting in part.groupby(SETTING, sort=True):
        cells = []
        for size in sizes:
            cell = setting[setting["batch_size"] == size]
            found = _strongest(cell)
            if found is None:
                cells.append({"value": "n/a", "rule": "", "verdict": ""})
                continue
            rule, rule_rows = found
            cells.append({"value": format_mean_ci(rule_rows["label_acc"], ".2f"), "rule": rule,
                          "verdict": label_verdict(rule_rows, cell[cell["rule"] == FLOOR_RULE])})
        rows.append({"setting": _setting_name(defense, role, ratio), "cells": cells})
    floor = [format_mean_ci(part[(part["batch_size"] == s) & (part["rule"] == FLOOR_RULE)]
                            ["label_acc"], ".2f") for s in sizes]
    n = int(part.groupby([*SETTING, "batch_size", "rule"]).size().min())
    return {"sizes": sizes, "rows": rows, "floor": floor, "n": n}


def rule_tables(part: pd.DataFrame) -> list[dict[str, Any]]:
    """Per setting, every rule's (and guess's) mean accuracy per batch size."""
    sizes = sorted(part["batch_size"].unique().tolist())
    order = [*LABEL_RULES, "guess_uniform", FLOOR_RULE]
    tables = []
    for (defense, role, ratio), setting in part.groupby(SETTING, sort=True):
        rows = []
        for rule in [r for r in order if r in set(setting["rule"])]:
            values = setting[setting["rule"] == rule]
            rows.append({"rule": rule, "cells": [
                format_mean_ci(values[values["batch_size"] == s]["label_acc"], ".2f")
                for s in sizes]})
        tables.append({"setting": _setting_name(defense, role, ratio), "sizes": sizes,
                       "rows": rows})
    return tables


def label_sections(labels: pd.DataFrame | None) -> list[dict[str, Any]]:
    """The report's label-recovery section, one entry per dataset."""
    if labels is None or labels.empty:
        return []
    return [{"dataset": str(name), "strongest": strongest_table(part),
             "rules": rule_tables(part)}
            for name, part in labels.groupby("dataset", sort=True)]
