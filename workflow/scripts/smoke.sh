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
python "$repo/workflow/scripts/check_smoke.py" "$workdir" "${configs[@]}"
