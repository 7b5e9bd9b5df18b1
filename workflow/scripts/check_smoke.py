"""Check a finished smoke run: every expected row is there and the results are plausible.

Used by smoke.sh (local run) and slurm_smoke.sh (the same grid through SLURM).
Usage: python workflow/scripts/check_smoke.py WORKDIR CONFIG [CONFIG ...]
(later config files override earlier ones key by key, as in Snakemake).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd
import yaml

from defenses import DEFENSES
from jobs.config import validate_config
from jobs.plan import (
    images_per_job,
    label_jobs,
    privacy_jobs,
    protocol_runs,
    training_jobs,
    tuning_jobs,
)
from jobs.privacy import roles
from report.labels import strongest_table
from report.stats import CLEARS, MIN_SAMPLES, TOO_FEW, floor_verdict, run_table, unit_values
from report.strongest import SETTING, strongest_only, with_strongest


def main(argv: list[str]) -> None:
    if len(argv) < 2:
        sys.exit(__doc__)
    workdir, config = Path(argv[0]), {}
    for path in argv[1:]:  # later files override earlier ones key by key, as in Snakemake
        config.update(yaml.safe_load(Path(path).read_text()))
    config = validate_config(config)
    privacy = pd.read_csv(workdir / "results" / "privacy.csv")
    protocols = {run.protocol.id: run.protocol for run in protocol_runs(config)}
    images = images_per_job(config)
    expected = sum(images[job["protocol"], job["batch_size"], job["defense"], job["round"]]
                   * len(roles(DEFENSES[job["defense"]], protocols[job["protocol"]]))
                   for job in privacy_jobs(config))
    assert len(privacy) == expected, f"expected {expected} privacy rows, got {len(privacy)}"
    assert set(privacy["protocol"]) == set(protocols), set(privacy["protocol"])
    assert set(privacy["status"]) <= {"ok", "diverged"}, set(privacy["status"])
    utility = pd.read_csv(workdir / "results" / "utility.csv")
    final = utility.sort_values("round").groupby(["dataset", "defense", "ratio", "seed"]).tail(1)
    assert len(final) == len(training_jobs(config)), f"{len(final)} training runs finished"
    undefended = final[final.defense == "none"]
    assert (undefended.test_acc > 0.15).all(), f"no learning: {undefended.test_acc.tolist()}"
    assert (workdir / "results" / "report.html").stat().st_size > 10_000
    check_verdicts(privacy)
    check_labels(pd.read_csv(workdir / "results" / "labels.csv"), config)
    check_tuning(workdir, config, privacy)
    print(privacy.groupby(["dataset", "attack", "defense"])["psnr"].mean().round(2).to_string())
    print(final[["dataset", "defense", "ratio", "test_acc", "upload_bytes"]].to_string(index=False))
    absent = sorted(set(DEFENSES) - set(privacy["defense"]))
    if absent:  # the CI grid is meant to run every defense: add it to config/smoke.yaml
        print(f"note: registered defenses not in this smoke grid: {', '.join(absent)}")
    print(f"smoke OK: {len(privacy)} privacy rows, {len(final)} training runs")


def check_tuning(workdir: Path, config: dict, privacy: pd.DataFrame) -> None:
    """One tuning.csv row per tuning job, never below the defaults' public PSNR, and the
    privacy rows of exactly the tuned settings' attacks marked tuned."""
    keys = ["protocol", "defense", "attack"]
    tuned = {tuple(job[k] for k in keys) for job in privacy_jobs(config) if job["tuned"]}
    marked = [tuple(row) in tuned for row in privacy[keys].itertuples(index=False)]
    assert (privacy["tuned"] == marked).all()
    jobs = tuning_jobs(config)
    if not jobs:
        return
    tuning = pd.read_csv(workdir / "results" / "tuning.csv")
    assert len(tuning) == len(jobs), f"expected {len(jobs)} tuning rows, got {len(tuning)}"
    default, tuned = (tuning[c].fillna(float("-inf")) for c in ("default_psnr", "tuned_psnr"))
    assert (tuned >= default).all(), "a tuned attack scored below its defaults"


def check_verdicts(privacy: pd.DataFrame) -> None:
    """The report's analysis ran as on the default grid: every setting has a strongest
    attack and a floor verdict with an interval, and on the embedded digits, which the smoke
    grid's short attacks invert, the undefended initial model clears the guessing floor under
    every protocol (on natural images they are too short to, and the report says so: no
    better than guessing)."""
    strongest = strongest_only(with_strongest(privacy))
    verdicts = {key: floor_verdict(rows) for key, rows in strongest.groupby(SETTING)}
    assert len(verdicts) == len(privacy.groupby(SETTING)), "a setting has no strongest attack"
    # Too few runs only where the smoke grid has fewer than MIN_SAMPLES independent ones (a
    # trained checkpoint is one model draw; a 4-user sum of 4 images is one run).
    units = {key: len(unit_values(run_table(rows), "psnr"))
             for key, rows in strongest.groupby(SETTING)}
    wrong = {k: v for k, v in verdicts.items() if (v == TOO_FEW) != (units[k] < MIN_SAMPLES)}
    assert not wrong, f"verdicts inconsistent with their runs: {wrong}"
    undefended = {key: v for key, v in verdicts.items()
                  if key[0] == "digits" and key[4] == "none" and key[6] == 0}
    assert set(undefended.values()) <= {"clears the floor", TOO_FEW}, undefended
    assert not undefended or "clears the floor" in undefended.values(), undefended
    print(f"verdicts: {sum(v == 'clears the floor' for v in verdicts.values())} of "
          f"{len(verdicts)} settings clear the floor")


def check_labels(labels: pd.DataFrame, config: dict) -> None:
    """Every label job wrote every batch in every role; the oracle is exact; undefended
    single images' labels are read (iDLG) well above the guess."""
    settings = labels.groupby(["dataset", "defense", "ratio"])
    assert len(settings) == len(label_jobs(config)), f"{len(settings)} label settings"
    per_size = labels.groupby(["dataset", "defense", "role", "ratio", "batch_size",
                               "rule"]).size()
    assert set(per_size) == {config["labels"]["batches"]}, per_size
    assert (labels[labels["rule"] == "oracle"]["label_acc"] == 1).all()
    single = labels[(labels["dataset"] == "digits") & (labels["defense"] == "none")
                    & (labels["batch_size"] == 1)]
    if not single.empty:
        verdict = strongest_table(single)["rows"][0]["cells"][0]["verdict"]
        assert verdict == CLEARS, f"undefended digits, one image: {verdict}"
    print(f"labels OK: {len(labels)} rows over {len(settings)} settings")


if __name__ == "__main__":
    main(sys.argv[1:])
