"""The workflow's shape: the smoke grid's dry run lists the expected jobs."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
import yaml

from conftest import REPO


@pytest.mark.workflow
def test_smoke_dry_run_lists_the_expected_jobs(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "snakemake", "--dry-run", "--configfile",
         str(REPO / "config" / "smoke.yaml"), "--snakefile", str(REPO / "Snakefile"),
         "--directory", str(tmp_path)],
        capture_output=True, text=True, timeout=300, check=True)
    counts = dict(re.findall(r"^(\w+)\s+(\d+)$", result.stdout, re.MULTILINE))
    # Under each protocol its defenses (each smoke defense at one ratio) x its attacks x 2
    # model rounds x 1 seed; one training run per defense setting.
    smoke = yaml.safe_load((REPO / "config" / "smoke.yaml").read_text())
    names = [d["name"] for d in smoke["defenses"]]
    attacks = [a["name"] for a in smoke["attacks"]]
    expected = sum(len(p.get("defenses", names)) * len(p.get("attacks", attacks)) * 2
                   for p in smoke["privacy"]["protocols"])
    assert len(smoke["privacy"]["protocols"]) > 1
    # Round 0 (the initial model) and the trained round are two rules of one job, and a
    # tuned attack's jobs two more, after one tuning job per setting (an entry tunes its
    # attacks with a budget unless it lists its own).
    tuned = [a["name"] for a in smoke["attacks"] if "tune" in a]
    settings = sum(len(p.get("defenses", names))
                   * len(set(p.get("attacks", attacks)) & set(p.get("tune", tuned)))
                   for p in smoke["privacy"]["protocols"])
    assert tuned and settings and counts["tune"] == str(settings)
    assert counts["attack_tuned"] == counts["attack_trained_tuned"] == str(settings)
    assert counts["attack"] == counts["attack_trained"] == str(expected // 2 - settings)
    assert counts["train"] == str(len(names))
    # One label-recovery job per defense setting, like training.
    assert counts["labels"] == str(len(names))
    assert counts["aggregate_privacy"] == counts["aggregate_utility"] == "1"
    assert counts["aggregate_labels"] == counts["aggregate_tuning"] == counts["report"] == "1"
    # + four aggregates, the verdicts, the report and all
    assert counts["verdicts"] == "1"
    assert counts["total"] == str(expected + 2 * len(names) + settings + 7)


@pytest.mark.workflow
@pytest.mark.parametrize("name", sorted(p.name for p in (REPO / "config").glob("*.yaml")))
def test_every_shipped_config_plans_on_its_own_from_the_root(name: str) -> None:
    """`snakemake -n --configfile config/X.yaml` from the repository root plans X's grid
    alone: the default grid is read only when no config file is given, so none of its keys
    leak into X (the smoke grid once failed under the default's privacy seeds)."""
    from jobs.config import validate_config
    from jobs.plan import privacy_jobs, training_jobs, tuning_jobs

    shipped = yaml.safe_load((REPO / "config" / name).read_text())
    for dataset in shipped.get("datasets", []):
        if dataset["name"] == "imagefolder" and not (REPO / dataset["root"]).is_dir():
            pytest.skip(f"{name}: its images are not at {dataset['root']}")
    result = subprocess.run(
        [sys.executable, "-m", "snakemake", "--dry-run", "--forceall", "--configfile",
         f"config/{name}"], cwd=REPO, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    counts = {rule: int(n) for rule, n in re.findall(r"^(\w+)\s+(\d+)$", result.stdout,
                                                      re.MULTILINE)}
    config = validate_config(shipped)
    attacks = sum(counts.get(rule, 0) for rule in ("attack", "attack_trained", "attack_tuned",
                                                   "attack_trained_tuned"))
    assert (attacks, counts.get("train", 0), counts.get("tune", 0)) == (
        len(privacy_jobs(config)), len(training_jobs(config)), len(tuning_jobs(config)))
