"""The federated protocol a privacy job attacks: what a user computes and what the server sees.

A threat model is more than a defense: the same defense can hold for one user's single-step
gradient (FedSGD) and fail for a FedAvg update, or the reverse for the sum of many users'
updates. ``Protocol`` names that axis (the USENIX Security 2025 SoK's "what the server
observes"); ``dgp.updates.user_update`` computes what one user sends under it. Kept free
of torch: validating a config and planning the grid read it.

* ``fedsgd``: the gradient of the user's training loss at the server's weights.
* ``fedavg``: the weight change ``w_0 - w_E`` after ``local_steps`` plain SGD steps at
  ``local_lr``, each on the next ``local_batch_size`` images of the user's batch (cycling;
  0: the whole batch every step), as breaching's multi-step user and Dimitrov et al.
  (TMLR 2022) define it. The sign is the training code's (``dgp.fl.strategies.FedAvg``): for
  one step it is ``local_lr`` times the FedSGD gradient.
* ``users``: how many users' (each defended) updates the server sees only as their sum, as
  under secure aggregation (1: the user alone).
* ``batchnorm``: ``eval`` (layers normalise with the model's public running statistics) or
  ``train`` (with the batch's own statistics, which the server never sees).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

ALGORITHMS = ("fedsgd", "fedavg")
BATCHNORM_MODES = ("eval", "train")


@dataclass(frozen=True)
class Protocol:
    """One threat model's protocol (see the module docstring for each field)."""

    algorithm: str = "fedsgd"
    local_steps: int = 1
    local_batch_size: int = 0
    local_lr: float = 0.1
    users: int = 1
    batchnorm: str = "eval"

    def __post_init__(self) -> None:
        if self.algorithm not in ALGORITHMS:
            raise ValueError(f"protocol algorithm must be one of {', '.join(ALGORITHMS)}, "
                             f"got {self.algorithm!r}")
        if self.batchnorm not in BATCHNORM_MODES:
            raise ValueError(f"protocol batchnorm must be one of {', '.join(BATCHNORM_MODES)}"
                             f", got {self.batchnorm!r}")

    @property
    def id(self) -> str:
        """The protocol's name in paths and the CSV, e.g. 'fedsgd', 'fedavg-s2-lr0.1',
        'fedsgd-n4', 'fedsgd-bntrain'."""
        text = self.algorithm
        if self.algorithm == "fedavg":
            text += f"-s{self.local_steps}"
            if self.local_batch_size:
                text += f"-b{self.local_batch_size}"
            text += f"-lr{self.local_lr:g}"
        if self.users > 1:
            text += f"-n{self.users}"
        if self.batchnorm == "train":
            text += "-bntrain"
        return text

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, entry: dict[str, Any]) -> Protocol:
        """From a config entry (unknown keys, such as the entry's grid filters, ignored)."""
        return cls(**{k: v for k, v in entry.items() if k in cls.__dataclass_fields__})
