"""Learning to Invert against each defense (printed, never asserted).

    python benchmarks/learned_inversion.py [--seeds 0 1] [--num-images 3]
                                           [--attack-params '{"epochs": 20}']

Privacy jobs (``jobs.privacy``) of ``learned_inversion`` at its defaults (or
``--attack-params``) on digits 16x16 with an untrained LeNet, one image per run (each run
its own model draw, so its own inverter), on one CPU thread. Per defense setting: seconds
per run (the attack's own time: training set, training, inversion), mean PSNR and SSIM
with the standard error over runs, and the class-mean floor (the public class mean of the
recovered label) the attack must beat to show that more than the label leaked.
"""

from __future__ import annotations

import argparse
import json
import statistics

import torch

from jobs.privacy import run

DIGITS = {"name": "digits", "model": "lenet", "image_size": 16}
# (defense, ratio, params): the default grid's main defenses at one strong setting each.
SETTINGS = [
    ("none", 0.0, {}),
    ("dgp", 0.95, {}),
    ("topk", 0.95, {}),
    ("qsgd", 4, {}),
    ("dp_gaussian", 0.01, {"clip_norm": 1.0}),
    ("precode", 0.001, {"size": 256}),
    ("mixup", 4, {}),
    ("instahide", 4, {}),
]


def cell(values: list[float]) -> str:
    """Mean ± standard error."""
    error = statistics.stdev(values) / len(values) ** 0.5 if len(values) > 1 else 0.0
    return f"{statistics.fmean(values):.1f} ± {error:.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--num-images", type=int, default=3, help="runs per seed")
    parser.add_argument("--attack-params", type=json.loads, default={})
    parser.add_argument("--defenses", nargs="+", default=[s[0] for s in SETTINGS])
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"learned_inversion {args.attack_params or 'defaults'}; digits 16x16, untrained "
          f"LeNet, batch 1; {len(args.seeds) * args.num_images} runs per setting "
          "(mean ± s.e. over runs), one CPU thread")
    print("| setting | s / run | PSNR (dB) | SSIM | class-mean floor (dB) |")
    print("|---|---|---|---|---|")
    for defense, ratio, params in SETTINGS:
        if defense not in args.defenses:
            continue
        rows = []
        for seed in args.seeds:
            record, _ = run(DIGITS, defense, ratio, params, "learned_inversion",
                            args.attack_params, seed, args.num_images, 1, device="cpu")
            rows += record["rows"]
        print(f"| {defense} {ratio:g} | {statistics.fmean(r['attack_seconds'] for r in rows):.1f}"
              f" | {cell([r['psnr'] for r in rows])} | "
              f"{statistics.fmean(r['ssim'] for r in rows):.3f} | "
              f"{cell([r['class_floor_psnr'] for r in rows])} |", flush=True)


if __name__ == "__main__":
    main()
