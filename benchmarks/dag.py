"""How long Snakemake takes to plan the paper's grid (printed, never asserted).

    python benchmarks/dag.py [--configfile config/paper.yaml] [--repeats 3]

Times ``snakemake -n`` (a dry run: parse, validate the config, build the DAG, print every
job) on the config in an empty scratch directory, so existing results never shrink the DAG,
and prints the job count and the wall time of each run. The issue's target: under 10 s for
a grid of 2,000 jobs or more.

For scale it also times Snakemake alone on a trivial Snakefile with as many jobs of the
same shape (six wildcards, two outputs, a log and a benchmark file, no parameters, an
instant shell command): no workflow with that many jobs plans faster on this machine, so
the difference is what ours adds (one params function and resources per job, the aggregate
and report rules, and, on the first run only, the validation, which loads every plugin
module but imports no torch).

The first run starts from an empty validation cache (``DGP_CACHE_DIR``, jobs/plan.py):
it validates the config ("cold"); the later ones read the memo ("warm"), as every dry run
after the first on the same config and code does.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TARGET_SECONDS = 10.0
TARGET_JOBS = 2000
TARGET_RATIO = 1.15  # issue 15: ours at most this much slower than Snakemake alone


def snakemake_command() -> list[str]:
    """The snakemake beside this Python (the environment's), else the one on PATH."""
    beside = Path(sys.executable).with_name("snakemake")
    return [str(beside)] if beside.exists() else ["snakemake"]


TRIVIAL_SNAKEFILE = """
PATTERN = "{{dataset}}/{{defense}}/{{ratio}}/{{attack}}/round{{round}}/seed{{seed}}"
JOBS = [dict(dataset="d", defense="f", ratio=i, attack="a", round=0, seed=0)
        for i in range({jobs})]

rule all:
    input: [f"results/{{PATTERN.format(**j)}}.json" for j in JOBS]

rule job:
    output:
        json="results/" + PATTERN + ".json",
        png="results/" + PATTERN + ".png",
    log: "logs/" + PATTERN + ".log"
    benchmark: "benchmarks/" + PATTERN + ".tsv"
    shell: "touch {{output}}"
"""


def dry_run(configfile: Path | None, jobs: int = 0,
            cache: Path | None = None) -> tuple[int, float]:
    """Job count and wall seconds of one ``snakemake -n`` in a fresh scratch directory: of
    this workflow on ``configfile`` (validation memoised under ``cache``), or (None) of a
    trivial workflow of ``jobs`` jobs."""
    with tempfile.TemporaryDirectory(prefix="dag-benchmark-") as scratch:
        if configfile is None:
            snakefile = Path(scratch) / "Snakefile"
            snakefile.write_text(TRIVIAL_SNAKEFILE.format(jobs=jobs))
            options = ["--snakefile", str(snakefile)]
        else:
            options = ["--snakefile", str(REPO / "Snakefile"), "--configfile", str(configfile)]
        command = snakemake_command() + ["-n", "--directory", scratch] + options
        began = time.perf_counter()
        env = {**os.environ, **({"DGP_CACHE_DIR": str(cache)} if cache else {})}
        done = subprocess.run(command, capture_output=True, text=True, cwd=REPO, env=env)
        seconds = time.perf_counter() - began
    if done.returncode != 0:
        sys.exit(f"snakemake -n failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    match = re.search(r"^total\s+(\d+)\s*$", done.stdout + done.stderr, re.MULTILINE)
    if match is None:
        sys.exit("no 'total' line in the dry run's job stats")
    return int(match.group(1)), seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--configfile", type=Path, default=REPO / "config" / "paper.yaml")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    if shutil.which(snakemake_command()[0]) is None:
        sys.exit("snakemake not found: run it with the environment's python (.venv/bin/python)")
    with tempfile.TemporaryDirectory(prefix="dag-benchmark-cache-") as cache:
        jobs, cold = dry_run(args.configfile.resolve(), cache=Path(cache))
        seconds = [dry_run(args.configfile.resolve(), cache=Path(cache))[1]
                   for _ in range(args.repeats)]
    best = min(seconds)
    print(f"config: {args.configfile}")
    print(f"jobs in the DAG: {jobs}")
    print(f"snakemake -n wall time, first run (validates the config): {cold:.1f} s")
    print(
        f"snakemake -n wall time, validation memoised: best {best:.1f} s of {args.repeats} "
        f"({', '.join(f'{s:.1f}' for s in seconds)} s)"
    )
    print(f"per 1,000 jobs: {best / jobs * 1000:.1f} s")
    floor = min(dry_run(None, jobs - 1)[1] for _ in range(args.repeats))
    print(f"Snakemake alone, a trivial workflow of {jobs} jobs: {floor:.1f} s (best of "
          f"{args.repeats}); ours adds {best - floor:.1f} s")
    ratio = best / floor
    print(f"ratio to Snakemake alone: {ratio:.2f}x (target <= {TARGET_RATIO:.2f}x: "
          f"{'holds' if ratio <= TARGET_RATIO else 'is NOT met'}); the first run: "
          f"{cold / floor:.2f}x")
    verdict = "holds" if best < TARGET_SECONDS else "is NOT met"
    print(
        f"target (< {TARGET_SECONDS:.0f} s for >= {TARGET_JOBS:,} jobs): {verdict} at {jobs} jobs"
        + ("" if jobs >= TARGET_JOBS else f" (the grid has fewer than {TARGET_JOBS:,} jobs)")
    )


if __name__ == "__main__":
    main()
