"""One utility job: federated training of one model under one defense at one ratio.

Writes one CSV row per evaluation (test accuracy, loss, bytes per round and direction,
error-feedback residual, time), atomically, and optionally model checkpoints at chosen rounds
(for attacking a trained model).

Usable by hand: ``python -m jobs.train --help``.
"""

from __future__ import annotations

import argparse
import io
import json
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from defenses import create_defense
from dgp.columns import UTILITY_COLUMNS
from dgp.data import load_dataset
from dgp.device import resolve_device
from dgp.fl.federated import TrainingSettings, train
from dgp.fl.users import FederatedData
from dgp.io import write_atomically
from dgp.models import build_model, dense_reference_bytes
from jobs.options import add_setting_options
from jobs.plan import dataset_id
from jobs.quick_exit import run_and_exit


def _all_samples(spec: dict[str, Any], split: str):
    data = load_dataset(spec, split)
    images, labels = data.samples(list(range(len(data.dataset))))
    return data, images, labels


def save_checkpoint(path: str | Path, model: torch.nn.Module) -> None:
    """State dict only (loadable with ``weights_only=True``), written atomically."""
    buffer = io.BytesIO()
    torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, buffer)
    write_atomically(path, lambda tmp: tmp.write_bytes(buffer.getvalue()))


def run(dataset: dict[str, Any], defense: str, ratio: float, defense_params: dict[str, Any],
        training: dict[str, Any], seed: int, device: str = "auto",
        checkpoint_dir: str | Path | None = None) -> pd.DataFrame:
    torch_device = resolve_device(device)
    settings = TrainingSettings.from_config(training)
    data, train_images, train_labels = _all_samples(dataset, "train")
    _, test_images, test_labels = _all_samples(dataset, "test")
    defense_impl = create_defense(defense, ratio, defense_params)
    model = build_model(dataset["model"], data.channels, data.num_classes, data.image_size,
                        seed, defense_impl.wrap_model).to(torch_device)

    def on_checkpoint(round_index: int, current: torch.nn.Module) -> None:
        if checkpoint_dir is not None:
            save_checkpoint(Path(checkpoint_dir) / f"round{round_index}.pt", current)

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)  # dropout-free models, but keep any layer's RNG seeded
        splits = FederatedData(train_images, train_labels, test_images, test_labels,
                               data.normalize, data.num_classes)
        records = train(model, splits, defense_impl, settings, seed, on_checkpoint)
    job = {"dataset": dataset_id(dataset), "model": dataset["model"],
           "defense": defense, "ratio": ratio, "seed": seed}
    # Shares are against the undefended model's dense gradient; the trained model's own
    # (larger under PRECODE) is kept beside it.
    reference = dense_reference_bytes(dataset["model"], data.channels, data.num_classes,
                                      data.image_size)
    rows = [{**job, **r, "model_dense_bytes": r["dense_bytes"], "dense_bytes": reference}
            for r in records]
    return pd.DataFrame(rows, columns=UTILITY_COLUMNS)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_setting_options(parser)
    parser.add_argument("--training", type=json.loads, default={},
                        help="training settings as JSON (config key 'training')")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--checkpoint-dir", default=None)
    parser.add_argument("--out-csv", required=True)
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    table = run(args.dataset, args.defense, args.ratio, args.defense_params, args.training,
                args.seed, args.device, args.checkpoint_dir)
    write_atomically(args.out_csv, lambda tmp: table.to_csv(tmp, index=False))
    print(table[["round", "epoch", "test_acc", "train_loss", "upload_bytes",
                 "residual_norm"]].to_string(index=False))


if __name__ == "__main__":
    run_and_exit(main)
