#!/usr/bin/env bash
# The CI smoke workflow: config/smoke.yaml (every defense) on the embedded digits in
# results/smoke/ and, when a path is given, a lighter grid (none, dgp, topk, mixup) on an
# ImageFolder tree of natural images (e.g. ../shared/data/cifar10-mini) in
# results/smoke-images/. Neither touches the main run's results.
# Usage: bash workflow/scripts/smoke.sh [IMAGEFOLDER_ROOT]
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
export PATH="$repo/.venv/bin:$PATH"

run_grid() {  # run_grid WORKDIR CONFIG [CONFIG ...]: run the workflow, then check its rows
  local workdir=$1
  shift
  snakemake --snakefile "$repo/Snakefile" --directory "$workdir" --cores "$(nproc)" \
    --configfile "$@"
  python "$repo/workflow/scripts/check_smoke.py" "$workdir" "$@"
}

mkdir -p "$repo/results/smoke"
run_grid "$repo/results/smoke" "$repo/config/smoke.yaml"
if [ $# -ge 1 ] && [ -n "$1" ]; then
  root=$(cd "$1" && pwd)
  workdir="$repo/results/smoke-images"
  mkdir -p "$workdir"
  # Later config files override earlier ones key by key: this replaces datasets and defenses.
  cat > "$workdir/imagefolder.yaml" <<YAML
datasets:
  - {id: cifar10mini, name: imagefolder, root: "$root", model: lenet, image_size: 32,
     mean: [0.4914672, 0.4822617, 0.4467702], std: [0.2470322, 0.2434851, 0.2615879]}
defenses:
  - {name: none}
  - {name: dgp, ratios: [0.8]}
  - {name: topk, ratios: [0.8]}
  - {name: mixup, ratios: [4]}
YAML
  run_grid "$workdir" "$repo/config/smoke.yaml" "$workdir/imagefolder.yaml"
fi
