"""The verdicts as Markdown tables, one per dataset, protocol and threat model: what the
docs' default-grid page quotes, so that its figures come from a run, not from typing.

Usage::

    python -m report.markdown --verdicts results/verdicts.csv
    python -m report.markdown --verdicts results/verdicts.csv --before before.csv

(``--before``: the verdicts of the same grid judged by fewer attacks, ``python -m
report.verdicts --attacks ...``, beside the full ones.)
"""

from __future__ import annotations

import argparse

import pandas as pd

from report.verdicts import count_text, interval_text

THREAT = ["dataset", "protocol", "batch_size", "server", "labels"]


def verdict_markdown(verdicts: pd.DataFrame) -> str:
    """One table per threat model: each setting's strongest attack, n, PSNR and SSIM with
    their 95 % intervals, the higher floor, the success and rebuilt counts, the verdict and
    every attack it was chosen from."""
    parts = []
    for key, table in verdicts.groupby(THREAT, sort=True):
        parts.append(f"#### {_heading(*key)}\n")
        parts.append("| setting | strongest attack | n | PSNR (dB) | SSIM | floor (dB) "
                     "| success | rebuilt | verdict | attacks tried |")
        parts.append("|---|---|---|---|---|---|---|---|---|---|")
        for _, row in table.iterrows():
            setting = _setting(row)
            floor = max(row["floor_psnr"], row["class_floor_psnr"])
            psnr = interval_text(row, "psnr", ".1f", with_n=False)
            ssim = interval_text(row, "ssim", ".2f", with_n=False)
            parts.append(
                f"| {setting} | {row['strongest_attack']} | {int(row['n_units'])} "
                f"| {psnr} | {ssim} "
                f"| {floor:.1f} | {count_text(row, 'success')} | {count_text(row, 'rebuilt')} "
                f"| {row['verdict']} | {row['attacks_tried']} |")
        parts.append("")
    return "\n".join(parts)


def _heading(dataset: str, protocol: str, batch_size: int, server: str, labels: str) -> str:
    batch = f", batch {int(batch_size)}" if batch_size != 1 else ""
    return f"{dataset}, {protocol}{batch}: {server} server, labels {labels}"


def _setting(row: pd.Series) -> str:
    setting = f"{row['defense']} {row['ratio']:g}"
    return setting + (f", round {int(row['model_round'])}" if row["model_round"] else "")


def comparison_markdown(before: pd.DataFrame, after: pd.DataFrame) -> str:
    """One table per threat model: each setting's mean PSNR / SSIM, strongest attack and
    verdict under the ``before`` attacks and under all of them (``after``)."""
    keys = [*THREAT, "defense", "ratio", "model_round"]
    earlier = {tuple(row[k] for k in keys): row for _, row in before.iterrows()}
    parts = []
    for key, table in after.groupby(THREAT, sort=True):
        parts += [f"#### {_heading(*key)}\n",
                  "| setting | before: PSNR / SSIM, strongest | verdict "
                  "| after: PSNR / SSIM, strongest | verdict |",
                  "|---|---|---|---|---|"]
        for _, row in table.iterrows():
            old = earlier.get(tuple(row[k] for k in keys))
            then = ("not run", "") if old is None else (_summary(old), old["verdict"])
            parts.append(f"| {_setting(row)} | {then[0]} | {then[1]} | {_summary(row)} "
                         f"| {row['verdict']} |")
        parts.append("")
    return "\n".join(parts)


def _summary(row: pd.Series) -> str:
    return f"{row['psnr_mean']:.1f} / {row['ssim_mean']:.2f}, {row['strongest_attack']}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m report.markdown",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--verdicts", required=True, help="verdicts CSV (report.verdicts)")
    parser.add_argument("--before", help="verdicts CSV of fewer attacks, compared with it")
    args = parser.parse_args(argv)
    verdicts = _read(args.verdicts)
    print(verdict_markdown(verdicts) if args.before is None
          else comparison_markdown(_read(args.before), verdicts))


def _read(path: str) -> pd.DataFrame:
    return pd.read_csv(path, keep_default_na=False, na_values=[""])


if __name__ == "__main__":
    main()
