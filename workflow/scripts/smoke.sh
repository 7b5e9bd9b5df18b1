#!/usr/bin/env bash
# The CI smoke workflow: config/smoke.yaml on the embedded digits and, when a path is given,
# also on an ImageFolder tree of natural images (e.g. ../shared/data/cifar10-mini).
# Runs in results/smoke/ so it never touches the main run's results.
# Usage: bash workflow/scripts/smoke.sh [IMAGEFOLDER_ROOT]
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
workdir="$repo/results/smoke"
mkdir -p "$workdir"
configs=("$repo/config/smoke.yaml")
if [ $# -ge 1 ] && [ -n "$1" ]; then
  root=$(cd "$1" && pwd)
  # Later config files override earlier ones key by key: this replaces the dataset list.
  cat > "$workdir/imagefolder.yaml" <<YAML
datasets:
  - {name: digits, model: lenet, image_size: 32}
  - {id: cifar10mini, name: imagefolder, root: "$root", model: lenet, image_size: 32,
     mean: [0.4914672, 0.4822617, 0.4467702], std: [0.2470322, 0.2434851, 0.2615879]}
YAML
  configs+=("$workdir/imagefolder.yaml")
fi
export PATH="$repo/.venv/bin:$PATH"
snakemake --snakefile "$repo/Snakefile" --directory "$workdir" --cores "$(nproc)" \
  --configfile "${configs[@]}"
python - "$workdir" "${configs[@]}" <<'PY'
import sys
from pathlib import Path

import pandas as pd
import yaml

from dgp.config import privacy_jobs, training_jobs, validate_config

workdir, config = Path(sys.argv[1]), {}
for path in sys.argv[2:]:  # later files override earlier ones key by key, as in Snakemake
    config.update(yaml.safe_load(Path(path).read_text()))
config = validate_config(config)
privacy = pd.read_csv(workdir / "results" / "privacy.csv")
expected = len(privacy_jobs(config)) * config["privacy"]["num_images"]
assert len(privacy) == expected, f"expected {expected} privacy rows, got {len(privacy)}"
assert set(privacy["status"]) <= {"ok", "diverged"}, set(privacy["status"])
utility = pd.read_csv(workdir / "results" / "utility.csv")
final = utility.sort_values("round").groupby(["dataset", "defense", "ratio", "seed"]).tail(1)
assert len(final) == len(training_jobs(config)), f"{len(final)} training runs finished"
undefended = final[final.defense == "none"]
assert (undefended.test_acc > 0.15).all(), f"no learning: {undefended.test_acc.tolist()}"
assert (workdir / "results" / "report.html").stat().st_size > 10_000
print(privacy.groupby(["dataset", "attack", "defense"])["psnr"].mean().round(2).to_string())
print(final[["dataset", "defense", "ratio", "test_acc", "upload_bytes"]].to_string(index=False))
print(f"smoke OK: {len(privacy)} privacy rows, {len(final)} training runs")
PY
