"""The threat model a section of results was measured under, in words, from the CSV's
protocol columns (``dgp.protocol``), so that every verdict says under which protocol it
holds: "dgp protects" under FedSGD need not hold for a FedAvg update or an aggregate."""

from __future__ import annotations

import pandas as pd

from attacks import ATTACKS
from dgp.protocol import Protocol

DEFAULT = Protocol()


def with_protocol(table: pd.DataFrame) -> pd.DataFrame:
    """Tables from before the protocol axis attacked one user's FedSGD gradient with the
    labels inferred: fill those columns (or their empty cells) in, on a copy."""
    table = table.copy()
    if "server" not in table.columns or table["server"].isna().all():
        table["server"] = [_server(attack) for attack in table["attack"]]
    for name, value in {"protocol": DEFAULT.id, **DEFAULT.as_dict(),
                        "labels": "inferred", "knowledge": "not recorded"}.items():
        if name not in table.columns or table[name].isna().all():
            table[name] = value  # (an all-empty column is float: replace, not fill)
        else:
            table[name] = table[name].fillna(value)
    table["protocol"] = table["protocol"].astype("string")
    return table


def _server(attack: str) -> str:
    """From the registry: an active attack's server changes the model it sends."""
    impl = ATTACKS.get(str(attack))
    return "malicious" if impl is not None and impl.active else "honest-but-curious"


def describe(rows: pd.DataFrame) -> str:
    """E.g. 'fedavg-s2-lr0.1: FedAvg, the weight change after 2 local SGD steps (lr 0.1,
    the whole batch each step) of one user, BatchNorm in eval mode; labels inferred'."""
    first = rows.iloc[0]
    if first["algorithm"] == "fedavg":
        per_step = (f"{int(first['local_batch_size'])} images" if first["local_batch_size"]
                    else "the whole batch")
        sent = (f"FedAvg, the weight change after {int(first['local_steps'])} local SGD steps "
                f"(lr {float(first['local_lr']):g}, {per_step} each step)")
    else:
        sent = "FedSGD, the gradient"
    users = int(first["users"])
    whose = ("of one user" if users == 1 else
             f"summed over {users} users (secure aggregation: only the sum is seen)")
    labels = ", ".join(sorted(rows["labels"].astype(str).unique()))
    servers = sorted(rows["server"].astype(str).unique())
    malicious = sorted(rows.loc[rows["server"] == "malicious", "attack"].astype(str).unique())
    server = ("an honest-but-curious server" if servers == ["honest-but-curious"] else
              f"servers {' and '.join(servers)} (malicious: {', '.join(malicious)}, which "
              "change the model they send)")
    return (f"{first['protocol']}: {sent} {whose}, BatchNorm in {first['batchnorm']} mode; "
            f"labels {labels}; {server}; besides the model and the update, {_knowledge(rows)}")


def _knowledge(rows: pd.DataFrame) -> str:
    """What each attack used (``Attack.knowledge``, over the section's defenses), e.g. 'ig
    used nothing else; idlg_adaptive used defense protocol, public data'."""
    parts = []
    for attack, values in rows.groupby("attack", sort=True)["knowledge"]:
        items = sorted({item for value in values.astype(str) for item in value.split(", ")
                        if item != "none"})
        parts.append(f"{attack} used {', '.join(items)}" if items else
                     f"{attack} used nothing else")
    return "; ".join(parts)
