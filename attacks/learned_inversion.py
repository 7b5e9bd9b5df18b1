"""Learning to Invert (Wu, Chen & Weinberger, UAI 2023): a network trained to map a
defended update to the images behind it.

The attacker knows the shared model and the defense's protocol. For each of its own public
training images it computes what a user holding that image would upload, through the very
pipeline a user's update goes through, with the attacker's own random draws: the defense's
data transform (mixing partners drawn from the public pool), the update under the protocol
(``dgp.updates.user_update``), the defense's gradient stage. An MLP (two ReLU hidden layers,
sigmoid output in pixel space) learns by MSE to map these defended updates to the images;
it is then applied to the user's update. A batch of B images is one training example whose
B outputs are matched to its B images by the Hungarian assignment of least squared error,
as in the reference.

Reference: ``main_learn_dlg.py`` of wrh14/Learning_to_Invert. Ours differs on purpose:
every run has its own model draw, so the inverter is trained per run (nothing carries over
between runs); the input is the standardised update (per-feature mean and std over the
training set), which lets a small network learn in a few epochs on a CPU (the reference
trains 200 epochs of a 3,000-unit MLP on a GPU); its defaults are sized for one CPU core
at LeNet on 16x16 digits; the public data is the dataset's training split, never an
attacked (test) image, and the network of the last epoch is used (the reference keeps the
epoch of lowest loss on its test images, the attacked ones); and the defense is whatever
the suite's defense does, not the reference's four hand-written leak modes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from dgp.attack import Attack, AttackTarget, Reconstruction, label_rule
from dgp.data import distinct_draws
from dgp.defense import Defense
from dgp.lazy import torch
from dgp.optim import Adam, MultiStepLR
from dgp.params import Param
from dgp.protocol import Protocol
from dgp.types import DrawSamples, PublicKnowledge, UserBatch
from dgp.updates import batched_user_updates, user_update

if TYPE_CHECKING:
    from torch import nn

# Standard deviations below this share of the mean one are floored to it: a feature the
# defense (almost) always zeroes would otherwise be blown up from rounding noise.
STD_FLOOR = 1e-6
# Simulated users whose updates one vectorised call computes: bounds its memory (LeNet at
# 16x16: about 10 MB of gradients per 256 users).
VECTORISED = 256


@dataclass
class Inverter:
    """A trained map from one defended update to the pixel images behind it."""

    network: nn.Sequential
    mean: torch.Tensor  # per-feature mean of the training updates
    std: torch.Tensor  # per-feature std of the training updates (floored)
    keep: list[bool]  # which of the update's tensors are features (``max_tensor_size``)
    steps: int  # optimiser steps taken

    def __call__(self, tensors: list[torch.Tensor]) -> torch.Tensor:
        """Pixel images [B * C * H * W] in [0, 1] from one defended update."""
        features = flat_features(tensors, self.keep).to(self.mean.device)
        with torch.no_grad():
            return self.network(((features - self.mean) / self.std).unsqueeze(0))[0]


def flat_features(tensors: list[torch.Tensor], keep: list[bool]) -> torch.Tensor:
    """The kept tensors of an update, flattened into one vector."""
    return torch.cat([t.detach().flatten().float()
                      for t, k in zip(tensors, keep, strict=True) if k])


def kept_tensors(tensors: list[torch.Tensor], max_size: int) -> list[bool]:
    """Which tensors are features: all (``max_size`` 0), else those of at most ``max_size``
    entries."""
    return [max_size == 0 or t.numel() <= max_size for t in tensors]


def public_draw(pixels: torch.Tensor, labels: torch.Tensor,
                generator: torch.Generator) -> DrawSamples:
    """Draws of public images (pixel space), all distinct within a draw: the attacker's
    stand-in for the user's other images, which a data defense mixes in."""
    return distinct_draws(torch.arange(len(pixels)),
                          lambda chosen: (pixels[chosen], labels[chosen]), generator)


def shifted_copies(pixels: torch.Tensor, copies: int,
                   generator: torch.Generator) -> torch.Tensor:
    """``pixels`` followed by ``copies`` copies of them, each image moved by a random shift
    of at most one pixel along each axis (edges replicated): more training images from the
    same public ones."""
    height, width = pixels.shape[-2:]
    padded = torch.nn.functional.pad(pixels, (1, 1, 1, 1), mode="replicate")
    out = [pixels]
    for _ in range(copies):
        dy, dx = torch.randint(0, 3, (2, len(pixels)), generator=generator)
        out.append(torch.stack([p[:, y:y + height, x:x + width] for p, y, x in
                                zip(padded, dy.tolist(), dx.tolist(), strict=True)]))
    return torch.cat(out)


def defended_updates(target: AttackTarget, batches: list[tuple[torch.Tensor, torch.Tensor]],
                     generator: torch.Generator, draw: DrawSamples) -> list[list[torch.Tensor]]:
    """What users holding each (pixels, labels) batch would upload under ``target``'s
    defense and protocol, with the attacker's own draws, shared as the attacked user's round
    was (``Defense.share_round``): a follower (ADGP's member) beside a leader holding
    another public batch, as the privacy job shares it beside another user."""
    defense, model = target.defense, target.model
    inputs, updates = _raw_updates(target, batches, generator, draw)
    if target.role in defense.roles[1:]:
        partners = [draw(len(pixels)) for pixels, _ in batches]
        leaders, leader_updates = _raw_updates(target, partners, generator, draw)
        return [defense.share_round([lead, update], generator,
                                    [UserBatch(model, lead_inputs), UserBatch(model, shown)])[1]
                .tensors for lead, update, lead_inputs, shown
                in zip(leader_updates, updates, leaders, inputs, strict=True)]
    return [defense.share_round([update], generator, [UserBatch(model, shown)])[0].tensors
            for update, shown in zip(updates, inputs, strict=True)]


def _raw_updates(target: AttackTarget, batches: list[tuple[torch.Tensor, torch.Tensor]],
                 generator: torch.Generator, draw: DrawSamples,
                 ) -> tuple[list[torch.Tensor], list[list[torch.Tensor]]]:
    """(normalised inputs, undefended update) of each batch after the defense's data
    transform; the updates computed ``VECTORISED`` users at a time where the model allows
    (``dgp.updates.batched_user_updates``), else one by one."""
    defense, public, model = target.defense, target.public, target.model
    device = next(model.parameters()).device
    center = public.denormalize(public.center).cpu()
    shown = [defense.transform_batch(pixels, labels, target.num_classes, generator, draw,
                                     center) for pixels, labels in batches]
    inputs = [public.normalize(images).to(device) for images, _ in shown]
    targets = [classes.to(device) for _, classes in shown]
    updates: list[list[torch.Tensor]] = []
    for start in range(0, len(inputs), VECTORISED):
        chunk = slice(start, start + VECTORISED)
        batched = batched_user_updates(model, torch.stack(inputs[chunk]),
                                       torch.stack(targets[chunk]), target.protocol)
        if batched is None:
            updates += [[u.cpu() for u in user_update(model, x, y, target.protocol)]
                        for x, y in zip(inputs[chunk], targets[chunk], strict=True)]
        else:
            updates += [list(per_user) for per_user in zip(*(b.cpu() for b in batched),
                                                           strict=True)]
    return inputs, updates


def training_set(target: AttackTarget, copies: int, keep: list[bool],
                 generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """(defended updates [n, D], their images [n, B * C * H * W] in [0, 1]) from the public
    training images and ``copies`` shifted copies of each, shuffled and grouped into
    batches of the user's size."""
    public: PublicKnowledge = target.public
    pixels = public.denormalize(public.images).cpu().clamp(0, 1)
    labels = public.labels.cpu()
    draw = public_draw(pixels, labels, generator)
    images = shifted_copies(pixels, copies, generator)
    classes = labels.repeat(copies + 1)
    order = torch.randperm(len(images), generator=generator)
    size = target.batch_size
    chosen = [order[start:start + size] for start in range(0, len(order) - size + 1, size)]
    updates = defended_updates(target, [(images[c], classes[c]) for c in chosen],
                               generator, draw)
    return (torch.stack([flat_features(update, keep) for update in updates]),
            torch.stack([images[c].flatten() for c in chosen]))


def matched_mse(predicted: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
    """Mean squared error of [n, B, P] predictions against [n, B, P] images, each
    example's B outputs matched to its B images by the assignment of least total error
    (the reference's Hungarian matching; B = 1: plain MSE)."""
    if predicted.shape[1] == 1:
        return (predicted - truth).pow(2).mean()
    from scipy.optimize import linear_sum_assignment  # only batches need it

    costs = torch.cdist(truth, predicted).pow(2)
    rows, cols = [], []
    for example, cost in enumerate(costs.detach().cpu().numpy()):
        truth_rows, predicted_cols = linear_sum_assignment(cost)
        rows += [(example, int(r)) for r in truth_rows]
        cols += [(example, int(c)) for c in predicted_cols]
    pick_truth = truth[[e for e, _ in rows], [r for _, r in rows]]
    pick_predicted = predicted[[e for e, _ in cols], [c for _, c in cols]]
    return (pick_predicted - pick_truth).pow(2).mean()


def mlp(inputs: int, hidden: int, outputs: int) -> nn.Sequential:
    """The reference's inverter: two ReLU hidden layers, a sigmoid output (pixels)."""
    nn = torch.nn
    return nn.Sequential(nn.Linear(inputs, hidden), nn.ReLU(), nn.Linear(hidden, hidden),
                         nn.ReLU(), nn.Linear(hidden, outputs), nn.Sigmoid())


def standardized(features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-feature mean and std (floored: ``STD_FLOOR``) of the training updates."""
    mean, std = features.mean(0), features.std(0)
    floor = max(STD_FLOOR * float(std.mean()), torch.finfo(std.dtype).tiny)
    return mean, std.clamp_min(floor)


class LearnedInversion(Attack):
    name = "learned_inversion"
    algorithms = ("fedsgd", "fedavg")  # the training updates are simulated under either
    example_params = {"public_images": 32, "epochs": 2, "hidden": 16, "shifts": 0}
    parameters = {
        "public_images": Param(2048, int, low=1, doc=(
            "public training images the inverter learns from (the training split, spread "
            "evenly; all of it if smaller)")),
        "shifts": Param(1, int, low=0, doc=(
            "shifted copies of each public image added to the training set (each image "
            "moved by up to one pixel per axis)")),
        "hidden": Param(256, int, low=1, doc="units of each of the MLP's two hidden layers"),
        "epochs": Param(40, int, low=1, doc="passes over the training set (lr x0.1 at 75 %)"),
        "lr": Param(3e-3, float, low=0, low_open=True, doc="Adam's initial lr"),
        "train_batch": Param(256, int, low=1, doc="training examples per Adam step"),
        # The input layer grows with the update: PRECODE's bottleneck adds 147,456 weights to
        # the LeNet's 9,466 at 16x16, at a cost in time, memory and PSNR measured in
        # docs/attacks.md. Every LeNet tensor up to 32x32 is kept.
        "max_tensor_size": Param(20_000, int, low=0, doc=(
            "leave out of the inverter's input every update tensor of more entries than "
            "this (0: keep all)")),
        "label_rule": label_rule("auto"),
    }

    @property
    def public_training_images(self) -> int:
        return self.params["public_images"]

    def knowledge(self, defense: Defense | None, protocol: Protocol,
                  num_images: int) -> list[str]:
        """Public data (the images it trains on) and the defense's protocol (the
        pipeline each training update goes through), beside what every attack uses."""
        known = super().knowledge(defense, protocol, num_images)
        if "public data" not in known:
            known.append("public data")
        return known if defense is None else [*known, "defense protocol"]

    def reconstruct(self, target: AttackTarget,
                    generator: torch.Generator | None = None) -> Reconstruction:
        observed = list(target.shared.tensors)
        labels = self.recovered_labels(target, observed)
        inverter = self.train_inverter(target, generator)
        pixels = inverter(observed).view(target.batch_size, *target.image_shape)
        lower, upper = (b.to(pixels.device) for b in target.box)
        images = torch.maximum(torch.minimum(target.public.normalize(pixels), upper), lower)
        status = "ok" if bool(torch.isfinite(images).all()) else "diverged"
        return Reconstruction(images, labels, status, math.nan, inverter.steps)

    def train_inverter(self, target: AttackTarget,
                       generator: torch.Generator | None = None) -> Inverter:
        """The inverter for ``target``'s model, defense and protocol, trained on public
        images only; the same for the same ``generator`` state (its draws seed the
        defense's randomness, the network's initialisation and the shuffling)."""
        if target.public is None or target.public.images is None:
            raise ValueError(f"attack {self.name!r} trains on public images, but the target "
                             "carries none (PublicKnowledge.images)")
        if target.defense is None:
            raise ValueError(f"attack {self.name!r} needs the defense's protocol "
                             "(AttackTarget.defense)")
        generator = generator or torch.Generator().manual_seed(0)
        keep = kept_tensors(list(target.shared.tensors), self.params["max_tensor_size"])
        seed = int(torch.randint(2**62, (1,), generator=generator))
        # Layers that sample (PRECODE) and the network's initialisation draw from the
        # global generator: seeded from ours, and restored after.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            features, truths = training_set(target, self.params["shifts"], keep, generator)
            network = mlp(features.shape[1], self.params["hidden"], truths.shape[1])
        device = target.public.images.device
        mean, std = standardized(features)
        network = network.to(device)
        steps = self._fit(network, ((features - mean) / std).to(device), truths.to(device),
                          target.batch_size, generator)
        return Inverter(network.eval(), mean.to(device), std.to(device), keep, steps)

    def _fit(self, network: nn.Sequential, inputs: torch.Tensor, truths: torch.Tensor,
             batch_size: int, generator: torch.Generator) -> int:
        """Adam on the matched MSE over ``epochs`` shuffled passes, lr x0.1 after 75 % of
        them (the reference's schedule); returns the steps taken."""
        epochs, per_step = self.params["epochs"], self.params["train_batch"]
        optimizer = Adam(network.parameters(), lr=self.params["lr"], fused=True)
        schedule = MultiStepLR(optimizer, [int(0.75 * epochs)], gamma=0.1)
        shape = (-1, batch_size, truths.shape[1] // batch_size)
        steps = 0
        network.train()
        for _ in range(epochs):
            order = torch.randperm(len(inputs), generator=generator).to(inputs.device)
            for start in range(0, len(order), per_step):
                chosen = order[start:start + per_step]
                loss = matched_mse(network(inputs[chosen]).view(shape),
                                   truths[chosen].view(shape))
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                steps += 1
            schedule.step()
        return steps
