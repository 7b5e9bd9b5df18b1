"""The verdict of a defense setting is its strongest attacker's, chosen without peeking.

A setting is one threat model: (dataset, protocol, server capability, label knowledge,
defense, ratio, model round). Honest-but-curious and malicious attacks are never candidates
for the same verdict (``STRONGEST`` and ``STRONGEST_MALICIOUS``), and an attack handed the
true labels (``labels == "given"``, ``label_rule: oracle``) is never a candidate at all: it
is an upper bound shown beside the verdict.

Picking the attack with the best PSNR on the images it is then judged on would be the
winner's curse (several attacks at the floor: the best of them "clears" it by chance). So
each seed's runs are judged by the attack with the highest mean run PSNR on the *other*
seeds' runs (leave one seed out): the choice never sees the runs it is judged on. With a
single seed the runs (cases, each on its own model draw) are the folds; a setting with one
candidate attack needs no choice. The rows
added carry ``source_attack`` (the attack chosen for that seed) and ``tried`` (every
candidate: what a setting "no better than guessing" held against).
"""

from __future__ import annotations

import pandas as pd

from report.stats import run_table

STRONGEST = "strongest"
STRONGEST_MALICIOUS = "strongest_malicious"
STRONGEST_NAMES = (STRONGEST, STRONGEST_MALICIOUS)
SETTING = ["dataset", "protocol", "batch_size", "server", "labels", "defense", "ratio",
           "model_round"]
SELECTION = ("leave one seed out: each seed's runs are judged by the attack with the highest "
             "mean run PSNR on the other seeds' runs")


def fold_column(rows: pd.DataFrame) -> str:
    """What the choice leaves out: the seed, or with a single seed the run's case."""
    return "seed" if rows["seed"].nunique() > 1 else "batch"


def _run_psnr(rows: pd.DataFrame) -> pd.DataFrame:
    """Per attack and run: its fold and mean PSNR, as ``choose_per_seed`` reads them (the
    fold in the ``seed`` column)."""
    runs = run_table(rows)
    return runs.assign(seed=runs[fold_column(rows)])[["attack", "seed", "psnr"]]


def choose_per_seed(runs: pd.DataFrame) -> dict[int, str]:
    """Seed -> the attack with the highest mean run PSNR over the other seeds' runs (ties
    by name), among the attacks that ran on that seed; ``runs`` has attack, seed, psnr."""
    chosen = {}
    for seed in sorted(runs["seed"].unique()):
        ran_here = set(runs.loc[runs["seed"] == seed, "attack"])
        others = runs[(runs["seed"] != seed) & runs["attack"].isin(ran_here)]
        scores = others.groupby("attack")["psnr"].mean().dropna()
        if scores.empty:
            continue
        chosen[int(seed)] = str(scores.sort_index().idxmax())  # ties: first by name
    return chosen


def _strongest_rows(group: pd.DataFrame, name: str) -> pd.DataFrame:
    """One attack's rows per fold; a lone candidate is the strongest without a choice."""
    tried = ", ".join(tuned_name(group, str(a)) for a in sorted(group["attack"].unique()))
    if group["attack"].nunique() == 1:
        return group.assign(source_attack=group["attack"], attack=name, candidates=1,
                            tried=tried)
    key = fold_column(group)
    chosen = choose_per_seed(_run_psnr(group))
    parts = [group[(group[key] == fold) & (group["attack"] == attack)]
             for fold, attack in chosen.items()]
    if not parts:
        return group.iloc[0:0]
    rows = pd.concat(parts)
    return rows.assign(source_attack=rows["attack"], attack=name,
                       candidates=group["attack"].nunique(), tried=tried)


def with_strongest(privacy: pd.DataFrame) -> pd.DataFrame:
    """``privacy`` with each setting's strongest attack's rows added as ``STRONGEST`` (honest-
    but-curious server) or ``STRONGEST_MALICIOUS``; every row gets ``source_attack``, the
    attack that produced it. Candidates infer the labels."""
    rows = privacy[~privacy["attack"].isin(STRONGEST_NAMES)].assign(
        source_attack=privacy["attack"])
    if rows.empty:
        return rows
    candidates = rows[rows["labels"] == "inferred"]
    strongest = [
        _strongest_rows(group, STRONGEST_MALICIOUS
                        if key[SETTING.index("server")] == "malicious" else STRONGEST)
        for key, group in candidates.groupby(SETTING, sort=True, dropna=False)]
    table = pd.concat([rows, *strongest], ignore_index=True)
    table["attack"] = table["attack"].astype("string")
    table["source_attack"] = table["source_attack"].astype("string")
    return table


def strongest_only(privacy: pd.DataFrame) -> pd.DataFrame:
    """The honest-but-curious strongest rows (the main verdicts)."""
    return privacy[privacy["attack"] == STRONGEST]


def tuned_name(rows: pd.DataFrame, attack: str) -> str:
    """``attack``, marked 'ig (tuned)' where its rows ran with parameters tuned on public
    data (``tuned``)."""
    source = rows["source_attack"] if "source_attack" in rows else rows["attack"]
    tuned = rows.loc[source == attack, "tuned"].astype("boolean").fillna(False)
    return f"{attack} (tuned)" if tuned.any() else attack


def attack_label(rows: pd.DataFrame) -> str:
    """'ig', or for a strongest pseudo-attack the attack(s) behind it: 'strongest: ig';
    each marked ' (tuned)' if it was tuned."""
    attack = str(rows["attack"].iloc[0])
    if attack not in STRONGEST_NAMES or "source_attack" not in rows:
        return tuned_name(rows, attack)
    sources = sorted(rows["source_attack"].dropna().unique())
    return f"{attack}: {', '.join(tuned_name(rows, str(a)) for a in sources)}"
