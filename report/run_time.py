"""Run time spent per rule (the report's compute table), from the ``benchmark:`` files
Snakemake writes for every job."""

from __future__ import annotations

from pathlib import Path

import pandas as pd


def benchmark_table(root: str | Path) -> pd.DataFrame:
    """One row per job: its rule (first folder under ``root``), wall seconds, peak RSS (MB)
    and CPU seconds. Empty when there are no benchmark files."""
    rows = []
    root = Path(root)
    for path in sorted(root.rglob("*.tsv")):
        try:
            record = pd.read_csv(path, sep="\t")
        except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError):
            continue
        if record.empty or "s" not in record:
            continue
        last = record.iloc[-1]
        rows.append({"rule": path.relative_to(root).parts[0], "seconds": float(last["s"]),
                     "max_rss_mb": float(last.get("max_rss", float("nan"))),
                     "cpu_seconds": float(last.get("cpu_time", float("nan")))})
    return pd.DataFrame(rows, columns=["rule", "seconds", "max_rss_mb", "cpu_seconds"])


def run_time_summary(root: str | Path) -> dict[str, object]:
    """Per rule: jobs, total and mean wall time, peak memory; and the total over rules."""
    table = benchmark_table(root)
    rules = []
    for rule, group in table.groupby("rule", sort=True):
        rules.append({"rule": str(rule), "jobs": str(len(group)),
                      "total": f"{group['seconds'].sum() / 60:.1f} min",
                      "mean": f"{group['seconds'].mean():.1f} s",
                      "max": f"{group['seconds'].max():.1f} s",
                      "peak_rss": f"{group['max_rss_mb'].max():,.0f} MB",
                      "cpu": f"{group['cpu_seconds'].sum() / 60:.1f} min"})
    return {"rules": rules, "total": f"{table['seconds'].sum() / 3600:.2f} h",
            "jobs": len(table)}
