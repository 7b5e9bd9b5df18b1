"""The verdict of a defense setting is its strongest attacker's.

For each (dataset, protocol, defense, ratio, model round), the attack of the run with the highest
mean PSNR over the images every attack of that setting attacked is the setting's strongest;
its rows are added once more under the attack name ``STRONGEST`` (``source_attack`` names
the attack), so that the at-a-glance table, the headline figure panels and the privacy
claims judge each defense by the best attacker the suite has, adaptive ones included.
Passive attacks that fail against a defense then cannot make it look protective.
"""

from __future__ import annotations

import pandas as pd

from report.threat import with_protocol

STRONGEST = "strongest"
SETTING = ["dataset", "protocol", "defense", "ratio", "model_round"]
IMAGE = ["seed", "sample"]


def _strongest_rows(group: pd.DataFrame) -> pd.DataFrame:
    """The rows of the attack with the highest mean PSNR on the images all attacks share."""
    attacks = {name: rows for name, rows in group.groupby("attack", sort=True)}
    common = None
    for rows in attacks.values():
        keys = set(map(tuple, rows[IMAGE].to_numpy().tolist()))
        common = keys if common is None else common & keys

    def shared(rows: pd.DataFrame) -> pd.DataFrame:
        return rows[[tuple(k) in common for k in rows[IMAGE].to_numpy().tolist()]]

    scores = {name: shared(rows)["psnr"].mean() for name, rows in attacks.items()}
    ranked = [name for name in sorted(scores, key=lambda n: (-scores[n], n))
              if pd.notna(scores[name])]
    best = ranked[0] if ranked else sorted(attacks)[0]
    return shared(attacks[best]).assign(source_attack=best, attack=STRONGEST)


def with_strongest(privacy: pd.DataFrame) -> pd.DataFrame:
    """``privacy`` with each setting's strongest attack's rows added as ``STRONGEST``
    (every row gets ``source_attack``: the attack that produced it)."""
    privacy = with_protocol(privacy)
    rows = privacy[privacy["attack"] != STRONGEST].assign(source_attack=privacy["attack"])
    if rows.empty:
        return rows
    strongest = [_strongest_rows(group) for _, group in rows.groupby(SETTING, sort=True,
                                                                      dropna=False)]
    table = pd.concat([rows, *strongest], ignore_index=True)
    table["attack"] = table["attack"].astype("string")
    table["source_attack"] = table["source_attack"].astype("string")
    return table


def strongest_only(privacy: pd.DataFrame) -> pd.DataFrame:
    return privacy[privacy["attack"] == STRONGEST]


def attack_label(rows: pd.DataFrame) -> str:
    """'ig', or for the strongest pseudo-attack the attack(s) behind it: 'strongest: ig'."""
    attack = str(rows["attack"].iloc[0])
    if attack != STRONGEST or "source_attack" not in rows:
        return attack
    return f"{STRONGEST}: {', '.join(sorted(rows['source_attack'].dropna().unique()))}"
