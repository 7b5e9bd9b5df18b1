"""What a job pays before its first tensor operation (printed, never asserted).

    python benchmarks/startup.py [--results results] [--repeats 3]

1. A bare ``import torch``, the privacy job's imports (all it loads before its first tensor
   operation, in a process ending as a job does, without the interpreter's teardown; issue
   target: at most 3 s), the teardown a bare ``import torch`` process pays at its end, then a
   whole privacy job with next to no work (IG, 1 iteration, one 16x16 digit), each timed as
   a fresh process (best of ``--repeats``): the job's ratio to the import is what our code
   adds to every job (issue target: at most 1.6x).
2. From a finished run's files (``--results``, e.g. the default grid's), per privacy job, as
   shares of its wall time (Snakemake's benchmark file, so the process's start and end
   included): its start-up, the wall time less ``job_seconds`` (the job's own work, from the
   end of its imports to its outputs written; issue target: at most 15 %), and everything
   outside the attack, the wall time less ``attack_seconds`` (so also the data, the model,
   the shared gradient, the scoring and the output files), both from
   ``privacy_timings.csv``.
"""

from __future__ import annotations

import argparse
import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

NO_WORK_JOB = [
    "-m", "jobs.privacy", "--dataset",
    '{"name": "digits", "model": "lenet", "image_size": 16}', "--defense", "none",
    "--ratio", "0", "--attack", "ig", "--attack-params", '{"iterations": 1}',
]


# A process that imports a module and ends as a job does (no interpreter teardown).
QUICK_EXIT = "import os, {}; os._exit(0)"


def best_seconds(arguments: list[str], repeats: int) -> float:
    """The fastest of ``repeats`` fresh ``python <arguments>`` processes."""
    times = []
    for _ in range(repeats):
        began = time.perf_counter()
        subprocess.run([sys.executable, *arguments], check=True, capture_output=True)
        times.append(time.perf_counter() - began)
    return min(times)


def start_up_share(results: Path) -> pd.DataFrame:
    """Per privacy job of a run: wall, work and attack seconds, and the shares of the wall
    time that are start-up (``startup_share``) and outside the attack (``rest_share``)."""
    timings = pd.read_csv(results / "privacy_timings.csv")
    keys = ["dataset", "protocol", "defense", "ratio", "attack", "model_round", "seed"]
    if "protocol" not in timings:  # a run from before the protocol axis
        timings = timings.assign(protocol="fedsgd")
    if "job_seconds" not in timings:  # a run from before the jobs timed their own work
        timings = timings.assign(job_seconds=math.nan)
    per_job = timings.groupby(keys).agg(attack_s=("attack_seconds", "sum"),
                                        job_s=("job_seconds", "first"))
    rows = []
    root = results / "benchmarks" / "privacy"
    for path in root.rglob("*.tsv"):
        parts = path.relative_to(root).with_suffix("").parts
        if len(parts) == 6:  # before the protocol axis: no protocol folder
            parts = (parts[0], "fedsgd", *parts[1:])
        dataset, protocol, defense, ratio, name, round_dir, seed = parts
        wall = float(pd.read_csv(path, sep="\t")["s"].iloc[0])
        rows.append({"dataset": dataset, "protocol": protocol, "defense": defense,
                     "ratio": float(ratio), "attack": name,
                     "model_round": int(round_dir.removeprefix("round")),
                     "seed": int(seed.removeprefix("seed")), "wall_s": wall})
    jobs = pd.DataFrame(rows).merge(per_job.reset_index(), how="inner")
    return jobs.assign(startup_share=1 - jobs["job_s"] / jobs["wall_s"],
                       rest_share=1 - jobs["attack_s"] / jobs["wall_s"])


def print_shares(jobs: pd.DataFrame, results: Path) -> None:
    """The start-up and outside-the-attack shares of a run, in all and by attack."""
    timed = jobs["job_s"].notna().all()

    def share(group: pd.DataFrame, seconds: str) -> str:
        median = (group["wall_s"] - group[seconds]).median()
        return f"{1 - group[seconds].sum() / group['wall_s'].sum():.1%} (median {median:.2f} s)"

    print(f"{len(jobs)} privacy jobs in {results}, as shares of their wall time (mean "
          f"{jobs['wall_s'].mean():.1f} s):")
    if timed:
        print(f"  start-up (wall less the job's own work): {share(jobs, 'job_s')}; per job: "
              f"median {jobs['startup_share'].median():.1%}, max "
              f"{jobs['startup_share'].max():.1%} (target <= 15 %)")
    else:
        print("  start-up: not computed (the run's jobs did not record job_seconds)")
    print(f"  outside the attack: {share(jobs, 'attack_s')}; per job: median "
          f"{jobs['rest_share'].median():.1%}, max {jobs['rest_share'].max():.1%}")
    for attack, group in jobs.groupby("attack"):
        startup = f"start-up {share(group, 'job_s')}, " if timed else ""
        print(f"  {attack}: {len(group)} jobs of median wall {group['wall_s'].median():.1f} s: "
              f"{startup}outside the attack {share(group, 'attack_s')}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--results", type=Path, default=Path("results"))
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch_s = best_seconds(["-c", "import torch"], args.repeats)
    torch_quick_s = best_seconds(["-c", QUICK_EXIT.format("torch")], args.repeats)
    imports_s = best_seconds(["-c", QUICK_EXIT.format("jobs.privacy")], args.repeats)
    print(f"the privacy job's imports (before its first tensor operation): {imports_s:.2f} s "
          f"(target <= 3 s)")
    print(f"the interpreter's teardown after import torch: {torch_s - torch_quick_s:.2f} s "
          f"(a job skips it: jobs/quick_exit.py)")
    with tempfile.TemporaryDirectory() as scratch:
        outputs = ["--out-json", f"{scratch}/job.json", "--out-png", f"{scratch}/job.png"]
        job_s = best_seconds(NO_WORK_JOB + outputs, args.repeats)
    print(f"import torch: {torch_s:.2f} s; a privacy job with next to no work: {job_s:.2f} s "
          f"({job_s / torch_s:.2f}x the import; target <= 1.6x)")
    if not (args.results / "privacy_timings.csv").is_file():
        print(f"no finished run under {args.results}: start-up share not computed")
        return
    print_shares(start_up_share(args.results), args.results)


if __name__ == "__main__":
    main()
