"""The interface every attack implements: ``reconstruct`` from what the server can see."""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from dgp.columns import ITERATION_FRACTIONS
from dgp.defense import Defense
from dgp.labels import LABEL_RULES, reads_public_data, recover_labels
from dgp.lazy import torch
from dgp.params import Param, Space, checked_params, default_values, tuning_space_error
from dgp.protocol import Protocol
from dgp.types import PublicKnowledge, SharedGradient

if TYPE_CHECKING:
    from torch import nn


@dataclass
class AttackTarget:
    """Everything an honest-but-curious server knows about one shared update.

    The public model state (weights and BatchNorm buffers), the defended gradient, the batch
    size, the image shape and class count, the valid pixel box in normalised space (from
    the public normalisation constants) and the defense's protocol. Never the user's images,
    labels or the defense's random draws; optionally, public knowledge of the data
    distribution.
    """

    model: nn.Module
    shared: SharedGradient
    batch_size: int
    image_shape: tuple[int, int, int]
    num_classes: int
    box: tuple[torch.Tensor, torch.Tensor]  # per-channel lower/upper bounds, [1, C, 1, 1]
    # The defense protocol (name, ratio, parameters), public like the model: defense-aware
    # attacks read it; passive attacks ignore it.
    defense: Defense | None = None
    # What public data tells about the data distribution (class means): defense-aware
    # attacks undo a data defense's transformation with it (``Defense.estimate_private``).
    public: PublicKnowledge | None = None
    # The true labels, only in the "labels are known" threat model (label_rule: oracle), an
    # upper bound on what any label rule recovers; None otherwise.
    oracle_labels: torch.Tensor | None = None
    # The federated protocol (dgp.protocol): FedSGD or FedAvg, and how many users' updates
    # ``shared`` sums (each of ``batch_size`` images; the attack recovers all of them).
    protocol: Protocol = field(default_factory=Protocol)
    # The same user's updates of further rounds on the same images, each with the defense's
    # fresh random draws, for attacks that watch a user over rounds
    # (``Attack.observed_rounds``); empty for the others.
    later_rounds: tuple[SharedGradient, ...] = ()
    # The attacked user's role in its round (``Defense.roles``): the server knows whether it
    # relayed someone else's band to this user. "aggregate" for a sum of users.
    role: str = "user"

    @property
    def num_images(self) -> int:
        """Images behind ``shared``: every aggregated user's batch."""
        return self.protocol.users * self.batch_size


class UserView:
    """One candidate user's update -> what of it the server would observe
    (``Attack.user_view``). A view may change along the run (``AnnealedBands``: soft band
    masks first, the exact hard ones after): the loops tell it each step, and such a view
    names its phase, so that iterates scored under different views are compared under the
    last one (``attacks.best_iterate``)."""

    def __call__(self, update: list[torch.Tensor]) -> list[torch.Tensor]:
        """The view of one candidate user's update."""
        raise NotImplementedError(f"{type(self).__name__} is no user view")

    def begin_step(self, step: int) -> None:
        """Before optimiser step ``step`` (from 1): a view that changes along the run moves
        on; one that does not ignores it."""

    @property
    def phase(self) -> str:
        """"soft" or "hard" for a view annealed from an approximation to the exact one;
        "" for a view that is the same throughout."""
        return ""

    @contextmanager
    def final(self) -> Iterator[None]:
        """Within it, the view of the run's last phase, which iterates are judged by."""
        yield


def label_rule(default: str) -> Param:
    return Param(default, str, choices=tuple(LABEL_RULES),
                 doc="how labels are recovered (dgp/labels.py; oracle: given)")


def checkpoint_steps(iterations: int) -> dict[int, float]:
    """The step after which each budget fraction is spent (the last fraction wins a tie)."""
    return {max(1, math.ceil(f * iterations)): f for f in ITERATION_FRACTIONS}


def mean_gradient(observed: list[torch.Tensor], protocol: Protocol) -> list[torch.Tensor]:
    """The shared update read as one user's FedSGD gradient (a mean over its images), the
    form the label rules and soft targets assume: a sum of users' updates is divided by
    their count, a FedAvg change ``w_0 - w_E`` by its lr and steps. Exact for one local
    step (``w_0 - w_1`` is lr times the gradient); for more, the mean gradient along the
    local path, a one-step equivalent that drifts from the gradient at ``w_0`` as the
    steps move the weights."""
    scale = protocol.users * (protocol.local_lr * protocol.local_steps
                              if protocol.algorithm == "fedavg" else 1.0)
    return observed if scale == 1.0 else [o / scale for o in observed]


@dataclass
class Reconstruction:
    """An attack's output: images in normalised space, labels, and how the run ended."""

    images: torch.Tensor
    labels: torch.Tensor
    status: str  # "ok" or "diverged" (a non-finite objective was met)
    loss: float  # the objective value of the returned images
    iterations: int  # optimiser steps taken (over all restarts)
    # The best images so far after each fraction of the budget (``ITERATION_FRACTIONS``), so
    # one run shows whether more iterations would still gain: a defense that only slows an
    # attack down shows a curve still rising. Empty for analytic attacks.
    checkpoints: dict[float, torch.Tensor] = field(default_factory=dict)
    # Which phase of an annealed run (``UserView.phase``) the returned images come from:
    # "soft" or "hard" (they are the best under the hard objective either way); "" for a
    # run whose objective does not change.
    phase: str = ""


def best_restart(runs: Iterable[Reconstruction]) -> Reconstruction:
    """The restart a server keeps, by what it can compute itself: a finished run before a
    diverged one, then the lower objective (the earlier on ties); it is credited with every
    restart's steps. The one restart policy of every attack with ``restarts``."""
    runs = list(runs)
    best = min(runs, key=lambda run: (run.status != "ok", run.loss))
    best.iterations = sum(run.iterations for run in runs)
    return best


class Attack(ABC):
    """A gradient inversion attack.

    Parameters are declared in ``parameters`` (type, range, default: checked when the attack
    is built, so a config with a bad value fails validation before any job runs);
    ``defaults`` is derived from them. ``tuning_space`` names the parameters a tuning job
    (``jobs.tune``) may search and their ranges, each inside the parameter's own range
    (checked when the class is defined); empty: the attack is not tunable.
    """

    name: ClassVar[str]
    parameters: ClassVar[dict[str, Param]] = {}
    defaults: ClassVar[dict[str, Any]] = {}
    # Parameters that make a run fast (a few iterations): the tests run every registered
    # attack with them in a whole privacy job.
    example_params: ClassVar[dict[str, Any]] = {}
    tuning_space: ClassVar[dict[str, Space]] = {}
    # Attacks whose prior reads BatchNorm statistics cannot run on models without them.
    needs_batchnorm: ClassVar[bool] = False
    # Active (malicious-server) attacks change the model users receive: see prepare_model.
    active: ClassVar[bool] = False
    # The protocols (dgp.protocol) this attack is built for: the algorithms whose update it
    # can invert, whether it inverts a sum of several users' updates, and the BatchNorm
    # modes it models. The config validator refuses any other combination.
    algorithms: ClassVar[tuple[str, ...]] = ("fedsgd",)
    aggregates: ClassVar[bool] = False
    batchnorm_modes: ClassVar[tuple[str, ...]] = ("eval",)
    # Attacks that optimise soft labels of their own beside the images (DLG): their
    # candidates carry those labels, not the ones a label rule or the update implies.
    optimize_labels: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.defaults = default_values(cls.parameters)
        problem = tuning_space_error(cls.parameters, cls.tuning_space)
        if problem:
            raise TypeError(f"attack {cls.__name__} {problem}")

    def __init__(self, **params: Any) -> None:
        self.params = checked_params(f"attack {self.name!r}", self.parameters, params)

    def tuning_ranges(self, protocol: Protocol | None = None) -> dict[str, Space]:
        """``tuning_space`` with each range widened to hold this attack's configured value,
        which a tuning job tries first, less the parameters that do nothing under
        ``protocol`` (``inert_under``); raises ValueError where no range can hold it."""
        inert = self.inert_under(protocol) if protocol is not None else set()
        ranges = {}
        for name, space in self.tuning_space.items():
            if name in inert:
                continue
            try:
                ranges[name] = space.widened(self.params[name])
            except ValueError as error:
                raise ValueError(f"attack {self.name!r} parameter {name}: {error}") from None
        return ranges

    def inert_under(self, protocol: Protocol) -> set[str]:
        """The parameters that change nothing under ``protocol`` (a tuning job leaves them
        at their configured values); none by default."""
        return set()

    @classmethod
    def protocol_error(cls, protocol: Protocol) -> str | None:
        """Why this attack cannot run under ``protocol``, or None."""
        if protocol.algorithm not in cls.algorithms:
            return (f"attack {cls.name!r} cannot invert {protocol.algorithm} updates (protocol "
                    f"{protocol.id!r}); it handles {', '.join(cls.algorithms)}")
        if protocol.users > 1 and not cls.aggregates:
            return (f"attack {cls.name!r} cannot invert a sum of {protocol.users} users' "
                    f"updates (protocol {protocol.id!r}); it needs one user's update")
        if protocol.batchnorm not in cls.batchnorm_modes:
            return (f"attack {cls.name!r} does not model BatchNorm in {protocol.batchnorm} "
                    f"mode (protocol {protocol.id!r}); it handles "
                    f"{', '.join(cls.batchnorm_modes)}")
        return None

    @classmethod
    def defense_error(cls, defense: type[Defense]) -> str | None:
        """Why this attack has nothing to attack behind ``defense``, or None (any)."""
        return None

    @property
    def public_training_images(self) -> int:
        """How many public images (the training split, spread evenly; never an attacked
        one) this attack trains on: the privacy job loads that many into
        ``AttackTarget.public`` (``images``, ``labels``). None by default, so jobs of
        attacks that train on nothing load nothing beyond the class means."""
        return 0

    @property
    def observed_rounds(self) -> int:
        """How many rounds of one user's updates on the same images this attack observes
        (``AttackTarget.later_rounds`` holds all but the first): one by default."""
        return 1

    @property
    def needs_true_labels(self) -> bool:
        """Whether this attack runs in the labels-known threat model (``label_rule:
        oracle``): the job then hands it the true labels (``AttackTarget.oracle_labels``)."""
        return self.params.get("label_rule") == "oracle"

    def knowledge(self, defense: Defense | None, protocol: Protocol,
                  num_images: int) -> list[str]:
        """What this attack uses beyond what every attacker has (the model it sent, the
        update, the batch size, image shape and class count), in the terms of the SoK's
        adversary knowledge (Carletti et al., USENIX Security 2025): ``public data`` (images
        or class means of the data distribution), ``BatchNorm statistics`` (the model's
        running statistics as a prior), ``local hyperparameters`` (a FedAvg user's steps, lr
        and batch size), ``defense protocol`` (defense-aware attacks). Whether the labels
        were given is the ``labels`` column, whether the server changed the model
        ``server``; ``num_images`` is every image behind the update."""
        rule = self.params.get("label_rule")
        known = []
        if self.active or (rule is not None and reads_public_data(rule, num_images)):
            known.append("public data")
        if self.needs_batchnorm:
            known.append("BatchNorm statistics")
        if protocol.algorithm == "fedavg":
            known.append("local hyperparameters")
        return known

    def recovered_labels(self, target: AttackTarget,
                         observed: list[torch.Tensor]) -> torch.Tensor:
        """The batch's labels by this attack's ``label_rule`` (dgp/labels.py)."""
        class_means = target.public.class_means if target.public is not None else None
        observed = mean_gradient(observed, target.protocol)
        return recover_labels(self.params["label_rule"], observed, target.num_images,
                              target.num_classes, target.model, class_means,
                              target.oracle_labels)

    def candidate_targets(self, target: AttackTarget, candidate: torch.Tensor,
                          labels: torch.Tensor) -> torch.Tensor:
        """The targets a candidate batch's update is simulated under: the recovered
        ``labels`` by default; a defense-aware attack may model a defense's soft targets."""
        return labels

    def user_view(self, target: AttackTarget, steps: int) -> UserView | None:
        """What the attack applies to each candidate user's update before a sum of users'
        updates is formed (``attacks.objectives.candidate_update``), over a run of
        ``steps`` optimiser steps (a view may change along the run). Passive attacks match
        the raw sum (None); defense-aware ones model each user's defense."""
        return None

    def prepare_model(self, model: nn.Module, public_images: torch.Tensor) -> nn.Module:
        """The model the server sends to users. Passive attacks send it unchanged; active
        attacks (``active = True``) modify it, knowing only public data."""
        return model

    def matching_loss(self, candidate: list[torch.Tensor], observed: list[torch.Tensor],
                      target: AttackTarget) -> torch.Tensor:
        """The distance a gradient-matching attack minimises between a candidate's gradient
        and the observed one; the defense-aware variants (``attacks/adaptive.py``) wrap it.
        Analytic attacks (``rtf``) match nothing."""
        raise NotImplementedError(f"attack {self.name!r} does not match gradients")

    @abstractmethod
    def reconstruct(self, target: AttackTarget,
                    generator: torch.Generator | None = None) -> Reconstruction:
        """Reconstruct the user's batch from ``target``."""

    def reconstruct_all(self, targets: Sequence[AttackTarget],
                        generators: Sequence[torch.Generator | None]) -> list[Reconstruction]:
        """Reconstruct several independent targets, each with its own stream; one after
        another by default. An attack that solves them together (``solves_together``)
        gives each the result it would get alone, within float tolerance."""
        return [self.reconstruct(target, generator)
                for target, generator in zip(targets, generators, strict=True)]

    def solves_together(self, targets: Sequence[AttackTarget]) -> bool:
        """Whether ``reconstruct_all`` solves ``targets`` as one batched computation (then
        nothing in it draws from torch's global generator); False by default."""
        return False
