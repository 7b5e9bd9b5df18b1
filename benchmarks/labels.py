"""Label recovery per rule and batch size (printed, never asserted).

    python benchmarks/labels.py [--batches 20] [--sizes 1 2 4 8 16] [--seed 0]

Each rule in ``attacks.labels.LABEL_RULES`` reads the undefended gradient of a batch of
digits (16x16, drawn uniformly without replacement from the test split, so labels repeat
as batches grow) on a freshly initialised, untrained LeNet; public data is the train
split's class means. A cell is the mean label accuracy (the share of the batch's label
multiset recovered, as the privacy job scores it) over ``--batches`` batches, with its
standard error; the resampled unit is one batch with its own LeNet initialisation.
``oracle`` (handed the true labels) is the upper bound, ``random guess`` (uniform labels)
chance; a rule that does not apply at a batch size (``idlg``: one image) prints n/a.
"""

from __future__ import annotations

import argparse
import statistics

import torch

from attacks.labels import LABEL_RULES, recover_labels
from dgp.data import ImageData, load_dataset
from dgp.gradients import parameter_gradients
from dgp.jobs.privacy import match_labels
from dgp.models import build_model

DIGITS = {"name": "digits", "model": "lenet", "image_size": 16}
GUESS = "random guess"


def recovered_share(predicted: list[int], true: list[int]) -> float:
    """Label accuracy: the share of the batch's labels the prediction recovers."""
    paired = match_labels(predicted, true)
    return sum(p == t for p, t in zip(paired, true, strict=True)) / len(true)


def applies(rule: str, batch_size: int) -> bool:
    """iDLG reads one image's gradient; every other rule takes any batch."""
    return rule != "idlg" or batch_size == 1


def public_class_means(train: ImageData) -> torch.Tensor:
    """The server's public data: each class's mean normalised train image [K, C, H, W]."""
    images, labels = train.samples(list(range(len(train.dataset))))
    images = train.normalize(images)
    return torch.stack([images[labels == c].mean(0) for c in range(train.num_classes)])


def batch_shares(test: ImageData, class_means: torch.Tensor, batch_size: int,
                 generator: torch.Generator, index: int) -> dict[str, float]:
    """Label accuracy of every applicable rule (and of a guess) on one drawn batch."""
    picks = torch.randperm(len(test.dataset), generator=generator)[:batch_size].tolist()
    images, labels = test.samples(picks)
    model = build_model("lenet", test.channels, test.num_classes, test.image_size,
                        seed=index).eval()
    gradients = parameter_gradients(model, test.normalize(images), labels)
    true = labels.tolist()
    shares = {}
    for rule in LABEL_RULES:
        if applies(rule, batch_size):
            predicted = recover_labels(rule, gradients, batch_size, test.num_classes, model,
                                       class_means, labels)
            shares[rule] = recovered_share(predicted.tolist(), true)
    guess = torch.randint(test.num_classes, (batch_size,), generator=generator)
    shares[GUESS] = recovered_share(guess.tolist(), true)
    return shares


def cell(values: list[float]) -> str:
    if not values:
        return "n/a"
    error = statistics.stdev(values) / len(values) ** 0.5 if len(values) > 1 else 0.0
    return f"{statistics.fmean(values):.3f} ± {error:.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batches", type=int, default=20, help="batches per batch size")
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 2, 4, 8, 16])
    parser.add_argument("--seed", type=int, default=0, help="seed of the batch draws")
    args = parser.parse_args()
    test, train = load_dataset(DIGITS, "test"), load_dataset(DIGITS, "train")
    class_means = public_class_means(train)
    rows = [*LABEL_RULES, GUESS]
    results = {(rule, size): [] for rule in rows for size in args.sizes}
    for size in args.sizes:
        generator = torch.Generator().manual_seed(args.seed * 1000 + size)
        for index in range(args.batches):
            for rule, share in batch_shares(test, class_means, size, generator, index).items():
                results[rule, size].append(share)
    print(f"label accuracy (share of the batch's label multiset recovered), mean ± s.e.; "
          f"n = {args.batches} batches per size, the unit resampled: one batch of digits "
          f"16x16 (test split, drawn with seed {args.seed}) with its own untrained LeNet")
    print(f"{'rule':<14}" + "".join(f"{'B=' + str(size):>16}" for size in args.sizes))
    for rule in rows:
        print(f"{rule:<14}" + "".join(f"{cell(results[rule, size]):>16}"
                                      for size in args.sizes))


if __name__ == "__main__":
    main()
