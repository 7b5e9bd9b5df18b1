"""A run killed with SIGKILL mid-way resumes to results byte-identical to an uninterrupted
run: atomic outputs mean no partial file is taken as done, and every result is determined
by the config (wall times live in separate timing files)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from conftest import REPO

TINY = {
    "device": "cpu",
    "seeds": [0],
    "privacy": {"num_images": 2, "batch_size": 1, "model_rounds": [0]},
    "training": {"users": 2, "batch_size": 8, "epochs": 0.05, "lr": 0.01, "lr_schedule": {}},
    "datasets": [{"name": "digits", "model": "lenet", "image_size": 8}],
    "defenses": [{"name": "none"}, {"name": "dp_gaussian", "ratios": [0.01]}],
    "attacks": [{"name": "dlg", "params": {"iterations": 2}}],
}
TARGETS = ["results/privacy.csv", "results/utility.csv"]


def _snakemake(workdir: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"),
            "--directory", str(workdir), "--configfile", str(workdir / "config.yaml"),
            "--cores", "2", *extra]


def _prepare(workdir: Path) -> None:
    workdir.mkdir()
    (workdir / "config.yaml").write_text(yaml.safe_dump(TINY))


def _environment() -> dict[str, str]:
    # jobs call `python -m ...`: this interpreter must come first on PATH
    return {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}


@pytest.mark.workflow
def test_killed_run_resumes_to_identical_results(tmp_path):
    clean, killed = tmp_path / "clean", tmp_path / "killed"
    _prepare(clean)
    subprocess.run(_snakemake(clean, *TARGETS), check=True, capture_output=True,
                   env=_environment(), timeout=600)

    _prepare(killed)
    run = subprocess.Popen(_snakemake(killed, *TARGETS), stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, env=_environment(),
                           start_new_session=True)
    deadline = time.monotonic() + 300
    while not list(killed.glob("results/privacy/**/*.json")):
        assert run.poll() is None, "the run ended before it could be killed"
        assert time.monotonic() < deadline, "no job finished in time"
        time.sleep(0.2)
    os.killpg(run.pid, signal.SIGKILL)  # snakemake and every running job, mid-write
    run.wait()
    assert not (killed / "results" / "privacy.csv").exists()
    for record in killed.glob("results/privacy/**/*.json"):
        json.loads(record.read_text())  # whatever exists is complete (atomic writes)

    env = _environment()
    subprocess.run(_snakemake(killed, "--unlock"), check=True, capture_output=True, env=env)
    subprocess.run(_snakemake(killed, *TARGETS), check=True, capture_output=True, env=env,
                   timeout=600)
    for target in TARGETS:
        assert (killed / target).read_bytes() == (clean / target).read_bytes(), target
    timings = (killed / "results" / "privacy_timings.csv").read_text().splitlines()
    assert timings[0].endswith("attack_seconds,job_seconds") and len(timings) == 1 + 2 * 2
