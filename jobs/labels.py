"""One label-recovery job: every label rule against one defended setting, by batch size.

Label recovery is a family of attacks of its own (``dgp.labels.LABEL_RULES``): the
image attacks take their labels from one of these rules, and a defense that hides the
labels (DGP prunes the classifier gradient's largest entries, where iDLG and Yin's rule
read the label) weakens every image attack that relies on them. For one (dataset, defense,
ratio), each batch size ``B`` gets ``batches`` batches of ``B`` test images (drawn uniformly
without replacement, so labels repeat as ``B`` grows), each on its own freshly initialised
model; each batch's FedSGD gradient goes through the defense as in a privacy job, and each
rule reads the shared gradient, in each of the defense's roles (ADGP: broadcaster and
member, as the privacy job attacks them). A row is one (role, batch size, batch, rule): its
label accuracy, the share of the batch's label multiset recovered, as the privacy job
scores it.

Two guesses that read no gradient give the floor: ``guess_uniform`` (uniform random labels)
and ``guess_prior`` (the public class frequencies spread over ``B`` labels by largest
remainder); ``oracle`` (handed the true labels) is the upper bound.

Usable by hand: ``python -m jobs.labels --help``.
"""

from __future__ import annotations

import argparse
from typing import Any

import pandas as pd
import torch

from defenses import Defense, create_defense
from dgp.columns import LABEL_COLUMNS, LABEL_KEYS
from dgp.data import ImageData, encoding_center, load_dataset
from dgp.device import resolve_device
from dgp.io import write_atomically
from dgp.labels import LABEL_RULES, recover_labels
from dgp.models import build_model
from dgp.protocol import Protocol
from dgp.scenario import partner_draw, public_samples
from dgp.scoring import match_labels
from dgp.types import PublicKnowledge, UserBatch
from dgp.updates import user_update
from jobs.options import add_setting_options
from jobs.plan import dataset_id
from jobs.quick_exit import run_and_exit

GUESSES = ("guess_uniform", "guess_prior")


def label_share(predicted: list[int], true: list[int]) -> float:
    """Label accuracy: the share of the batch's labels the prediction recovers."""
    paired = match_labels(predicted, true)
    return sum(p == t for p, t in zip(paired, true, strict=True)) / len(true)


def prior_guess(frequencies: torch.Tensor, batch_size: int) -> list[int]:
    """``batch_size`` labels spread as the public class ``frequencies`` (largest remainder,
    ties to the lower class): the multiset a guesser expects, reading no gradient."""
    quota = frequencies / frequencies.sum() * batch_size
    counts = quota.floor().long()
    order = sorted(range(len(quota)), key=lambda c: (-(quota[c] - counts[c]).item(), c))
    for c in order[:batch_size - int(counts.sum())]:
        counts[c] += 1
    return [c for c in range(len(counts)) for _ in range(int(counts[c]))]


class _Setting:
    """What every batch of the job shares: the data, the defense, the public knowledge."""

    def __init__(self, dataset: dict[str, Any], defense: Defense, device: torch.device):
        self.spec, self.defense, self.device = dataset, defense, device
        self.data: ImageData = load_dataset(dataset, split="test")
        public, public_labels = public_samples(load_dataset(dataset, split="train"))
        self.center = encoding_center(self.data.normalize, self.data.channels)
        self.public = PublicKnowledge.from_samples(
            self.data.normalize(public).to(device), public_labels.to(device),
            self.data.num_classes, self.data.normalize(self.center).to(device),
            self.data.normalize, self.data.denormalize)
        self.frequencies = torch.bincount(public_labels, minlength=self.data.num_classes)

    def update(self, model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor,
               picks: list[int], noise: torch.Generator) -> tuple[list[torch.Tensor], UserBatch]:
        """A batch's undefended FedSGD update after the defense's data transform."""
        shown, targets = self.defense.transform_batch(
            images, labels, self.data.num_classes, noise,
            partner_draw(self.data, picks, noise), self.center)
        inputs = self.data.normalize(shown).to(self.device)
        update = [u.cpu() for u in user_update(model, inputs, targets.to(self.device),
                                                Protocol())]
        return update, UserBatch(model, inputs)

    def shared_gradient(self, model: torch.nn.Module, picks: list[int], noise: torch.Generator,
                        role: str) -> tuple[list[torch.Tensor], list[int]]:
        """The defended FedSGD gradient of the batch ``picks`` in ``role`` and its true
        labels; a follower (ADGP's member) is shared beside a leader holding a batch of the
        user's other images, as the privacy job shares it."""
        images, labels = self.data.samples(picks)
        update, batch = self.update(model, images, labels, picks, noise)
        if role in self.defense.roles[1:]:
            others, other_labels = partner_draw(self.data, picks, noise)(len(picks))
            leader, leader_batch = self.update(model, others, other_labels, picks, noise)
            shared = self.defense.share_round([leader, update], noise,
                                              [leader_batch, batch])[1]
        else:
            shared = self.defense.share_round([update], noise, [batch])[0]
        return [t.to(self.device) for t in shared.tensors], labels.tolist()


def batch_rows(setting: _Setting, batch_size: int, batch: int, seed: int,
               role: str) -> list[dict[str, Any]]:
    """Every rule's (and guess's) label accuracy on one drawn batch, on its own model, in
    one role (every role of a batch gets the same draws up to its own)."""
    stream = seed * 1_000_003 + batch_size * 1_009 + batch
    noise = torch.Generator().manual_seed(stream)
    data = setting.data
    picks = torch.randperm(len(data.dataset), generator=noise)[:batch_size].tolist()
    torch.manual_seed(stream)  # layers that sample (PRECODE) draw from the global generator
    model = build_model(setting.spec["model"], data.channels, data.num_classes,
                        data.image_size, stream, setting.defense.wrap_model)
    model = model.to(setting.device).eval()
    observed, true = setting.shared_gradient(model, picks, noise, role)
    shares = {}
    for rule in LABEL_RULES:
        if LABEL_RULES[rule].applies(batch_size):
            predicted = recover_labels(rule, observed, batch_size, data.num_classes, model,
                                       setting.public.class_means, torch.tensor(true))
            shares[rule] = label_share(predicted.tolist(), true)
    uniform = torch.randint(data.num_classes, (batch_size,), generator=noise).tolist()
    shares["guess_uniform"] = label_share(uniform, true)
    shares["guess_prior"] = label_share(prior_guess(setting.frequencies, batch_size), true)
    return [{"role": role, "batch_size": batch_size, "batch": batch, "rule": rule,
             "label_acc": share} for rule, share in shares.items()]


def run(dataset: dict[str, Any], defense: str, ratio: float, defense_params: dict[str, Any],
        batch_sizes: list[int], batches: int, seed: int = 0,
        device: str = "auto") -> pd.DataFrame:
    """The job's table: one row per (role, batch size, batch, rule), ``LABEL_COLUMNS``."""
    torch_device = resolve_device(device)
    setting = _Setting(dataset, create_defense(defense, ratio, defense_params), torch_device)
    job = {"dataset": dataset_id(dataset), "model": dataset["model"], "defense": defense,
           "ratio": ratio, "seed": seed}
    rows = [{**job, **row} for role in setting.defense.roles for size in batch_sizes
            for batch in range(batches) for row in batch_rows(setting, size, batch, seed, role)]
    table = pd.DataFrame(rows, columns=LABEL_COLUMNS)
    return table.sort_values(LABEL_KEYS, kind="stable").reset_index(drop=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_setting_options(parser)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 2, 4, 8, 16])
    parser.add_argument("--batches", type=int, default=20, help="batches per batch size")
    parser.add_argument("--seed", type=int, default=0, help="seed of the draws and models")
    parser.add_argument("--out", required=True, help="CSV to write")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    table = run(args.dataset, args.defense, args.ratio, args.defense_params,
                args.batch_sizes, args.batches, args.seed, args.device)
    write_atomically(args.out, lambda tmp: table.to_csv(tmp, index=False))
    means = table.groupby(["rule", "batch_size"])["label_acc"].mean().unstack()
    print(means.round(3).to_string())


if __name__ == "__main__":
    run_and_exit(main)
