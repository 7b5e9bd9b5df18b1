"""The verdicts as Markdown tables, one per dataset, protocol and threat model: what the
docs' default-grid page quotes, so that its figures come from a run, not from typing.

Usage::

    python -m report.markdown --verdicts results/verdicts.csv
"""

from __future__ import annotations

import argparse

import pandas as pd

from report.verdicts import count_text, interval_text

THREAT = ["dataset", "protocol", "server", "labels"]


def verdict_markdown(verdicts: pd.DataFrame) -> str:
    """One table per threat model: each setting's strongest attack, n, PSNR and SSIM with
    their 95 % intervals, the higher floor, the success and rebuilt counts, the verdict and
    every attack it was chosen from."""
    parts = []
    for key, table in verdicts.groupby(THREAT, sort=True):
        dataset, protocol, server, labels = key
        parts.append(f"#### {dataset}, {protocol}: {server} server, labels {labels}\n")
        parts.append("| setting | strongest attack | n | PSNR (dB) | SSIM | floor (dB) "
                     "| success | rebuilt | verdict | attacks tried |")
        parts.append("|---|---|---|---|---|---|---|---|---|---|")
        for _, row in table.iterrows():
            setting = f"{row['defense']} {row['ratio']:g}"
            if row["model_round"]:
                setting += f", round {int(row['model_round'])}"
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


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m report.markdown",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--verdicts", required=True, help="verdicts CSV (report.verdicts)")
    args = parser.parse_args(argv)
    print(verdict_markdown(pd.read_csv(args.verdicts, keep_default_na=False,
                                       na_values=[""])))


if __name__ == "__main__":
    main()
