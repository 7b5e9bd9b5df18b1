"""Collect job outputs into tidy CSVs.

``python -m dgp.aggregate privacy --out results/privacy.csv <job JSON files>``: one row per
attacked image. ``python -m dgp.aggregate utility --out results/utility.csv <job CSV files>``:
one row per evaluation of a training run.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd

from dgp.io import write_atomically

JOB_COLUMNS = ["dataset", "model", "defense", "ratio", "attack", "model_round", "seed"]
ROW_COLUMNS = [
    "sample", "batch", "label", "predicted_label", "psnr", "ssim", "mse", "lpips",
    "label_acc", "status", "attack_loss", "attack_iterations", "attack_seconds",
    "dense_bytes", "sent_bytes", "sent_values", "index_bytes", "index_entropy_bytes",
    "compression", "dp_epsilon", "dp_delta",
]
COLUMNS = JOB_COLUMNS + ROW_COLUMNS + ["device", "image", "notes"]


def privacy_table(paths: list[str | Path]) -> pd.DataFrame:
    """One row per attacked image from job JSON files, with the job's fields repeated."""
    rows = []
    for path in sorted(map(Path, paths)):
        record = json.loads(path.read_text())
        job = record["job"]
        for row in record["rows"]:
            rows.append({**job, **row, "image": str(path.with_suffix(".png")),
                         "notes": " | ".join(record["notes"])})
    table = pd.DataFrame(rows, columns=COLUMNS)
    return table.sort_values(JOB_COLUMNS + ["sample"], kind="stable").reset_index(drop=True)


def utility_table(paths: list[str | Path]) -> pd.DataFrame:
    """All training runs' evaluation rows in one table, in a fixed order."""
    table = pd.concat([pd.read_csv(p) for p in sorted(map(Path, paths))], ignore_index=True)
    keys = ["dataset", "model", "defense", "ratio", "seed", "round"]
    return table.sort_values(keys, kind="stable").reset_index(drop=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("kind", choices=["privacy", "utility"])
    parser.add_argument("--out", required=True)
    parser.add_argument("records", nargs="+", help="job outputs (JSON for privacy, CSV for "
                                                    "utility)")
    args = parser.parse_args(argv)
    table = (privacy_table if args.kind == "privacy" else utility_table)(args.records)
    write_atomically(args.out, lambda tmp: table.to_csv(tmp, index=False))
    print(f"{len(table)} rows from {len(args.records)} {args.kind} jobs -> {args.out}")


if __name__ == "__main__":
    main()
