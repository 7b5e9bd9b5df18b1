"""Collect privacy job records into one tidy CSV: one row per attacked image.

Usage: ``python -m dgp.aggregate --out results/privacy.csv results/privacy/**/*.json``
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd

from dgp.io import write_atomically

JOB_COLUMNS = ["dataset", "model", "defense", "ratio", "attack", "seed"]
ROW_COLUMNS = [
    "sample", "batch", "label", "predicted_label", "psnr", "ssim", "mse", "lpips",
    "label_acc", "status", "attack_loss", "attack_iterations", "attack_seconds",
    "dense_bytes", "sent_bytes", "sent_values", "compression",
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


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Aggregate privacy job JSON files into a CSV.")
    parser.add_argument("--out", required=True)
    parser.add_argument("records", nargs="+", help="privacy job JSON files")
    args = parser.parse_args(argv)
    table = privacy_table(args.records)
    write_atomically(args.out, lambda tmp: table.to_csv(tmp, index=False))
    print(f"{len(table)} rows from {len(args.records)} jobs -> {args.out}")


if __name__ == "__main__":
    main()
