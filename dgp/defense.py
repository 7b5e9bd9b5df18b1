"""The interface every defense implements, and what it hands to the server.

A user's update passes through up to four stages, and a defense may act at any of them:
``wrap_model`` (change the architecture the user trains, e.g. PRECODE's bottleneck),
``transform_batch`` (change the data before the gradient, e.g. ATS, MixUp, InstaHide),
``apply`` (change the gradient, e.g. pruning, noise, quantization, Soteria), and
``accounting`` (formal guarantees of the release, e.g. DP's epsilon). Every stage defaults to
doing nothing, so a defense implements only what defines it.

Each defense also declares its **public protocol** for defense-aware attackers, who know it
(clip norm, which coordinates were sent, the band rule) but never the user's data or random
draws: ``attacker_view`` (what the server would observe for a candidate gradient),
``observation_nll`` (for random defenses, how likely the observation is given that view)
and ``constraint_penalty`` (what the protocol reveals about the entries it did not send).
Data-transform defenses add ``estimate_private``: from a reconstruction of what was shared
(the transformed image), the attacker's best estimate of the user's own image, from the
transformation family and public data (``PublicKnowledge``) alone.
"""

from __future__ import annotations

from abc import ABC
from typing import TYPE_CHECKING, Any, ClassVar

from dgp.lazy import torch
from dgp.params import Param, checked_params, default_values
from dgp.pruning import rank_band_mask, soft_band_mask
from dgp.types import DrawSamples, PublicKnowledge, SharedGradient, UserBatch, dense

if TYPE_CHECKING:
    from torch import nn

    from dgp.protocol import Protocol


class Defense(ABC):
    """A defense applied by a user before sharing.

    ``ratio`` is the defense's strength axis (``ratio_meaning`` says what it is for each
    defense). Subclasses declare their parameters in ``parameters`` (``dgp.params.Param``:
    default, type, range, as attacks do; ``defaults`` follows from it) and check a ratio, and
    whatever ties it to the parameters, in ``ratio_error``. ``family`` groups defenses in the
    report's figures.
    """

    name: ClassVar[str]
    ratio_meaning: ClassVar[str]
    # A valid ratio that runs fast: the tests exercise every registered defense at it.
    example_ratio: ClassVar[float]
    family: ClassVar[str]  # one of defenses.FAMILIES
    parameters: ClassVar[dict[str, Param]] = {}
    defaults: ClassVar[dict[str, Any]] = {}
    # Compressing defenses drop information that error feedback can carry to later rounds;
    # they get error feedback in training by default (as in the DGP code).
    compresses: ClassVar[bool] = False
    # The roles a user can have in a round (``share_round``), each attacked on its own: one
    # ("user") where every user is defended alone. Where a round ties users together (ADGP:
    # a broadcaster whose band every member sends at), the first role is the round's leader
    # and the others follow it; the report shows a follower as "<name> (<role>)".
    roles: ClassVar[tuple[str, ...]] = ("user",)
    # Label-mixing defenses (MixUp, InstaHide) train on soft targets: a defense-aware
    # attacker simulates its candidates under the targets the shared update implies.
    mixes_labels: ClassVar[bool] = False
    # Whether ``estimate_private`` reads public data (a data defense's estimate of the
    # user's image from the class means): a defense-aware attacker then uses it.
    estimate_reads_public_data: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.defaults = default_values(cls.parameters)

    def __init__(self, ratio: float, **params: Any) -> None:
        self.params = checked_params(f"defense {self.name!r}", self.parameters, params)
        error = self.ratio_error(ratio, self.params)
        if error:
            raise ValueError(error)
        self.ratio = float(ratio)

    @classmethod
    def ratio_error(cls, ratio: float, params: dict[str, Any]) -> str | None:
        """Return why ``ratio`` is invalid for this defense (``params`` already have their
        declared types and ranges), or None when it is valid."""
        return None

    @property
    def unbiased(self) -> bool:
        """Whether the shared gradient is an unbiased estimate of the raw one (a rescaled
        compressor): error feedback then only amplifies the residual, so 'auto' leaves it
        off even for a compressing defense."""
        return False

    def wrap_model(self, model: nn.Module) -> nn.Module:
        """The architecture users train and the server sees (unchanged by default)."""
        return model

    def transform_batch(self, images: torch.Tensor, labels: torch.Tensor, num_classes: int,
                        generator: torch.Generator | None = None,
                        draw: DrawSamples | None = None,
                        center: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """The (pixel-space images, targets) the gradient is computed on. Targets are class
        indices, or class probabilities [N, num_classes] for label-mixing defenses.
        ``center`` is the public pixel value the normalised encoding maps to 0 ([1, C, 1, 1],
        the dataset mean; None: 0)."""
        return images, labels

    def apply(self, gradients: list[torch.Tensor], generator: torch.Generator | None = None,
              batch: UserBatch | None = None) -> SharedGradient:
        """Defend one user's gradient (a list of per-parameter tensors). By default the
        gradient is sent as it is (defenses that act on the data or the model)."""
        return dense([g.clone() for g in gradients])

    def accounting(self, releases: int) -> dict[str, float]:
        """Formal guarantees after a user made ``releases`` releases (none by default)."""
        return {}

    def share_round(self, updates: list[list[torch.Tensor]],
                    generator: torch.Generator | None = None,
                    batches: list[UserBatch | None] | None = None,
                    leader: int = 0) -> list[SharedGradient]:
        """What each user of a round sends (``updates``: one gradient per user, in order;
        ``leader``: the user in the first of ``roles``, the others follow it). Training, the
        privacy job and the label job all share a round through this. By default each user
        is defended on its own (``apply``, drawing from ``generator`` in user order)."""
        batches = batches if batches is not None else [None] * len(updates)
        return [self.apply(update, generator, batch)
                for update, batch in zip(updates, batches, strict=True)]

    @classmethod
    def setting_name(cls, role: str) -> str:
        """How the report names this defense's rows of ``role``: the defense's name for a
        user defended alone, the leader or the sum; '<name> (<role>)' for a follower."""
        followers = cls.roles[1:]
        return f"{cls.name} ({role})" if role in followers else cls.name

    def attacker_view(self, candidate: list[torch.Tensor],
                      shared: SharedGradient) -> list[torch.Tensor]:
        """What the server would observe if the user's gradient were ``candidate``, without
        the defense's random draws; differentiable. By default the coordinates the shared
        gradient marks as unsent (its masks, whose positions travel with the values) are
        zeroed, so only what was sent is matched."""
        return [c if m is None else c * m.to(c.device)
                for c, m in zip(candidate, shared.masks, strict=True)]

    @classmethod
    def aggregate_error(cls, users: int) -> str | None:
        """Why a defense-aware attacker cannot model the sum of ``users`` users' uploads of
        this defense (its ``aggregate_view`` and likelihood would be wrong, not just
        inexact), or None. The config validator refuses such a protocol with such attacks
        before any job runs."""
        return None

    def update_band(self, numel: int) -> tuple[int, int] | None:
        """Where the sent positions of a tensor of ``numel`` entries are a band of the
        user's own update's magnitude ranking (dgp, topk): (largest entries skipped,
        entries sent); None where they are not (an attacker of a sum of users then cannot
        recompute them per candidate user: ``aggregate_view``)."""
        return None

    def aggregate_view(self, candidate: list[torch.Tensor], shared: SharedGradient,
                       temperature: float = 0.0) -> list[torch.Tensor]:
        """One candidate user's part of a sum of users' uploads (``shared``) as the server
        would observe it; differentiable. Where the sent positions are a band of the user's
        own update (``update_band``) they are recomputed from the candidate, so the sum of
        the users' views is the observed sum at the true images: hard masks, or at a
        ``temperature`` > 0 soft ones (``soft_band_mask``) through which an entry's way
        into or out of the band has a gradient. Otherwise the ``attacker_view`` at the
        sum's positions (every user's: an aligned band is exact, random masks are not
        known per user)."""
        bands = [self.update_band(c.numel()) for c in candidate]
        if any(band is None for band in bands):
            return self.attacker_view(candidate, shared)
        if temperature > 0:
            return [c * soft_band_mask(c, *band, temperature)
                    for c, band in zip(candidate, bands, strict=True)]
        return [c * rank_band_mask(c.detach(), *band).to(c.device, c.dtype)
                for c, band in zip(candidate, bands, strict=True)]

    def observation_nll(self, view: list[torch.Tensor],
                        shared: SharedGradient) -> torch.Tensor | None:
        """Negative log-likelihood per entry of the shared gradient given a candidate's
        ``attacker_view``, for defenses that add random noise; None: the attack matches the
        view with its own distance."""
        return None

    def constraint_penalty(self, candidate: list[torch.Tensor],
                           shared: SharedGradient) -> torch.Tensor | float:
        """How far ``candidate``'s unsent entries are from what the protocol reveals about
        them (0: they could be what was held back), relative to the shared gradient's
        energy. None is revealed by default."""
        return 0.0

    def reproducible_model(self, model: nn.Module, tensors: list[torch.Tensor],
                           num_images: int, protocol: Protocol) -> nn.Module:
        """The model with whatever of the user's own random draws inside it the shared
        update (``tensors``, of ``num_images`` images under ``protocol``) reveals fixed to
        them, so a defense-aware attacker's candidate update is computed as the user's was.
        By default the model draws nothing: returned as it is."""
        return model

    def estimate_private(self, reconstruction: torch.Tensor, soft_targets: torch.Tensor,
                         public: PublicKnowledge) -> torch.Tensor:
        """The attacker's best estimate of the user's own (normalised) images from a
        ``reconstruction`` of the images the shared gradient was computed on, given the
        targets read from that gradient (``soft_targets``, [N, num_classes]), the protocol
        and ``public`` knowledge only. By default what was shared is the user's image, so
        the reconstruction is returned unchanged; data-transform defenses undo what of
        their transformation the protocol lets an attacker undo."""
        return reconstruction

    def estimate_private_rounds(self, reconstructions: torch.Tensor,
                                soft_targets: torch.Tensor,
                                public: PublicKnowledge) -> torch.Tensor:
        """The same estimate from R rounds' reconstructions of the same user's images
        (``reconstructions`` [R, N, C, H, W], ``soft_targets`` [R, N, num_classes]), each
        round with the defense's fresh random draws (an attacker that watches the user over
        rounds). By default the mean of the rounds' ``estimate_private``: draws that vary
        between rounds average out; data defenses combine the rounds before estimating."""
        return torch.stack([self.estimate_private(images, targets, public)
                            for images, targets in zip(reconstructions, soft_targets,
                                                       strict=True)]).mean(0)
