"""The threat model a section of results was measured under, in words, from the CSV's
protocol columns (``dgp.protocol``), so that every verdict says under which protocol it
holds: "dgp protects" under FedSGD need not hold for a FedAvg update or an aggregate."""

from __future__ import annotations

import pandas as pd

from dgp.protocol import Protocol

DEFAULT = Protocol()


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
