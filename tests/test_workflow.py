"""The workflow's shape: the smoke grid's dry run lists the expected jobs."""

from __future__ import annotations

import re
import subprocess
import sys

from conftest import REPO


def test_smoke_dry_run_lists_the_expected_jobs(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "snakemake", "--dry-run", "--configfile",
         str(REPO / "config" / "smoke.yaml"), "--snakefile", str(REPO / "Snakefile"),
         "--directory", str(tmp_path)],
        capture_output=True, text=True, timeout=300, check=True)
    counts = dict(re.findall(r"^(\w+)\s+(\d+)$", result.stdout, re.MULTILINE))
    # 4 defense settings (none, dgp 0.8, topk 0.8, dp_gaussian 0.1) x 2 attacks x 1 seed.
    assert counts["attack"] == "8"
    assert counts["aggregate_privacy"] == "1" and counts["report"] == "1"
    assert counts["total"] == "11"
