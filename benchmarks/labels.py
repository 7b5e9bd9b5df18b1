"""Label recovery per rule and batch size (printed, never asserted).

    python benchmarks/labels.py [--batches 20] [--sizes 1 2 4 8 16] [--seed 0]
                                [--defense none --ratio 0]

The label-recovery job (``jobs.labels``, which the workflow runs for every configured
defense) on undefended digits: each rule in ``dgp.labels.LABEL_RULES`` reads the FedSGD
gradient of a batch of digits (16x16, drawn uniformly without replacement from the test
split, so labels repeat as batches grow) on a freshly initialised, untrained LeNet; public
data is the privacy job's (256 training images spread over the split). A cell is the mean
label accuracy (the share of the batch's label multiset recovered) over ``--batches``
batches, with its standard error; the resampled unit is one batch with its own LeNet
initialisation. ``oracle`` (handed the true labels) is the upper bound, ``guess_prior``
and ``guess_uniform`` what guessing achieves; a rule that does not apply at a batch size
(``idlg``: one image) prints n/a.
"""

from __future__ import annotations

import argparse
import json

from jobs.labels import run

DIGITS = {"name": "digits", "model": "lenet", "image_size": 16}


def cell(values) -> str:
    return "n/a" if values is None else f"{values['mean']:.3f} ± {values['sem']:.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batches", type=int, default=20, help="batches per batch size")
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 2, 4, 8, 16])
    parser.add_argument("--seed", type=int, default=0, help="seed of the batch draws")
    parser.add_argument("--defense", default="none")
    parser.add_argument("--ratio", type=float, default=0.0)
    parser.add_argument("--defense-params", type=json.loads, default={})
    args = parser.parse_args()
    table = run(DIGITS, args.defense, args.ratio, args.defense_params, args.sizes,
                args.batches, args.seed, device="cpu")
    cells = table.groupby(["rule", "batch_size"])["label_acc"].agg(["mean", "sem"])
    print(f"label accuracy (share of the batch's label multiset recovered), mean ± s.e.; "
          f"defense {args.defense} {args.ratio:g}; n = {args.batches} batches per size, the "
          f"unit resampled: one batch of digits 16x16 (test split, seed {args.seed}) with its "
          f"own untrained LeNet")
    print(f"{'rule':<14}" + "".join(f"{'B=' + str(size):>16}" for size in args.sizes))
    for rule in dict.fromkeys(table["rule"]):
        row = [cells.loc[(rule, size)] if (rule, size) in cells.index else None
               for size in args.sizes]
        print(f"{rule:<14}" + "".join(f"{cell(c):>16}" for c in row))


if __name__ == "__main__":
    main()
