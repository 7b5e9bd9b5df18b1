"""Attacks tuned on public data against each defense (printed, never asserted).

    python benchmarks/tuning.py [--attack ig_adaptive] [--trials 6] [--images 2]
                                [--settings dgp:0.95 qsgd:4 ...]

Tuning jobs (``jobs.tune``) of one attack at the default grid's parameters
(``config/config.yaml``) on digits 16x16 with an untrained LeNet, FedSGD, one image per
run, one CPU thread: per defense setting, the mean PSNR on the attacker's public images
(training split) of the configured parameters (trial 0) and of the best trial, the best
trial's parameters and the job's seconds. The study files go to a temporary folder.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
import yaml

from jobs.tune import run

DIGITS = {"name": "digits", "model": "lenet", "image_size": 16}
CONFIG = Path(__file__).resolve().parents[1] / "config" / "config.yaml"
# The default grid's settings the report called protective before the learned inversion
# and PRECODE's break, and its pruning settings.
SETTINGS = ["dgp:0.8", "dgp:0.95", "adgp:0.8", "topk:0.8", "topk:0.95", "dp_gaussian:0.01",
            "qsgd:4", "precode:0.001", "ats:1", "mixup:4", "instahide:4"]


def _db(value: float | None) -> str:
    return "diverged" if value is None else f"{value:.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--attack", default="ig_adaptive")
    parser.add_argument("--trials", type=int, default=6)
    parser.add_argument("--images", type=int, default=2)
    parser.add_argument("--settings", nargs="+", default=SETTINGS, help="defense:ratio")
    args = parser.parse_args()
    torch.set_num_threads(1)
    config = yaml.safe_load(CONFIG.read_text())
    attack_params = next(a.get("params", {}) for a in config["attacks"]
                         if a["name"] == args.attack)
    defense_params = {d["name"]: d.get("params", {}) for d in config["defenses"]}
    print(f"{args.attack} {attack_params}; {args.trials} trials x {args.images} public "
          "images; digits 16x16, untrained LeNet, FedSGD, one CPU thread")
    print("| setting | default public PSNR (dB) | tuned public PSNR (dB) | tuned parameters "
          "| s |")
    print("|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as folder:
        for setting in args.settings:
            defense, ratio = setting.split(":")
            began = time.perf_counter()
            record = run(DIGITS, defense, float(ratio), defense_params.get(defense, {}),
                         args.attack, attack_params, args.trials, args.images, 1,
                         Path(folder) / f"{defense}-{ratio}.db", device="cpu")
            tuned = record["tuned"]["params"]
            shown = ", ".join(f"{k} {v:.3g}" for k, v in sorted(tuned.items()))
            print(f"| {defense} {ratio} | {_db(record['default']['psnr'])} | "
                  f"{_db(record['tuned']['psnr'])} | {shown} | "
                  f"{time.perf_counter() - began:.0f} |", flush=True)


if __name__ == "__main__":
    main()
