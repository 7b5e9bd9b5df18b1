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
    # each smoke defense at one ratio x 2 attacks x 2 model rounds x 1 seed; one training
    # run per defense setting.
    defenses = len(yaml.safe_load((REPO / "config" / "smoke.yaml").read_text())["defenses"])
    assert counts["attack"] == str(defenses * 4)
    assert counts["train"] == str(defenses)
    assert counts["aggregate_privacy"] == "1" and counts["aggregate_utility"] == "1"
    assert counts["report"] == "1"
    assert counts["total"] == str(defenses * 5 + 4)  # + aggregates, report, all
