"""Collect job outputs into tidy CSVs, with wall times in files of their own.

``python -m jobs.aggregate privacy --out results/privacy.csv --timings
results/privacy_timings.csv <job JSON files>``: one row per attacked image.
``python -m jobs.aggregate utility --out results/utility.csv --timings
results/utility_timings.csv <job CSV files>``: one row per evaluation of a training run.
``python -m jobs.aggregate labels --out results/labels.csv <job CSV files>``: one row
per (setting, batch size, batch, label rule); these rows hold no wall times.
``python -m jobs.aggregate tuning --out results/tuning.csv <job JSON files>``: one row
per tuning job (setting and attack), its tuned parameters as columns; no wall times.

Results and times are kept apart so that the same config run twice on a CPU gives
byte-identical result CSVs; the timing CSVs carry the same key columns to join on.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd

from dgp.columns import (
    COLUMNS,
    LABEL_KEYS,
    PRIVACY_KEYS,
    TIMING_COLUMNS,
    TUNED_PARAM_PREFIX,
    TUNING_COLUMNS,
    TUNING_KEYS,
    UTILITY_KEYS,
)
from dgp.io import write_atomically


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
    return table.sort_values(PRIVACY_KEYS, kind="stable").reset_index(drop=True)


def csv_table(paths: list[str | Path], keys: list[str]) -> pd.DataFrame:
    """The jobs' CSV rows in one table, in a fixed order (by ``keys``)."""
    table = pd.concat([pd.read_csv(p) for p in sorted(map(Path, paths))], ignore_index=True)
    return table.sort_values(keys, kind="stable").reset_index(drop=True)


def utility_table(paths: list[str | Path]) -> pd.DataFrame:
    """All training runs' evaluation rows in one table, in a fixed order."""
    return csv_table(paths, UTILITY_KEYS)


def tuning_table(paths: list[str | Path]) -> pd.DataFrame:
    """One row per tuning job's JSON (jobs.tune): ``TUNING_COLUMNS``, then its tuned
    parameters, each a ``param_<name>`` column (empty for an attack that does not tune
    it)."""
    rows = []
    for path in sorted(map(Path, paths)):
        record = json.loads(path.read_text())
        rows.append({**{k: record["job"][k] for k in TUNING_KEYS},
                     "trials": record["trials"], "finished_trials": record["finished_trials"],
                     "pruned_trials": record["pruned_trials"], "images": record["images"],
                     "default_psnr": record["default"]["psnr"],
                     "tuned_psnr": record["tuned"]["psnr"],
                     **{TUNED_PARAM_PREFIX + name: value
                        for name, value in record["tuned"]["params"].items()}})
    params = sorted({c for row in rows for c in row} - set(TUNING_COLUMNS))
    table = pd.DataFrame(rows, columns=TUNING_COLUMNS + params)
    return table.sort_values(TUNING_KEYS, kind="stable").reset_index(drop=True)


def split_timings(table: pd.DataFrame, kind: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(results without wall times, key columns with the wall times)."""
    keys = PRIVACY_KEYS if kind == "privacy" else UTILITY_KEYS
    timing = [c for c in TIMING_COLUMNS[kind] if c in table.columns]
    return table.drop(columns=timing), table[keys + timing]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("kind", choices=["privacy", "utility", "labels", "tuning"])
    parser.add_argument("--out", required=True)
    parser.add_argument("--timings", help="CSV for the wall-time columns (privacy, utility)")
    parser.add_argument("records", nargs="+", help="job outputs (JSON for privacy and "
                                                    "tuning, CSV for utility and labels)")
    args = parser.parse_args(argv)
    if args.kind in ("labels", "tuning"):
        table = (csv_table(args.records, LABEL_KEYS) if args.kind == "labels"
                 else tuning_table(args.records))
        write_atomically(args.out, lambda tmp: table.to_csv(tmp, index=False))
        print(f"{len(table)} rows from {len(args.records)} {args.kind} jobs -> {args.out}")
        return
    if args.timings is None:
        parser.error(f"{args.kind} needs --timings")
    table = (privacy_table if args.kind == "privacy" else utility_table)(args.records)
    results, timings = split_timings(table, args.kind)
    write_atomically(args.out, lambda tmp: results.to_csv(tmp, index=False))
    write_atomically(args.timings, lambda tmp: timings.to_csv(tmp, index=False))
    print(f"{len(table)} rows from {len(args.records)} {args.kind} jobs -> {args.out}, "
          f"{args.timings}")


if __name__ == "__main__":
    main()
