#!/usr/bin/env bash
# Results unchanged by a refactoring: runs the digits smoke grid (config/smoke.yaml) with the
# code of the reference commit in .ci/results-reference (a commit whose results this one
# must reproduce byte for byte; a commit that changes results on purpose updates it) and
# compares its result CSVs (privacy, utility, labels) with those of the current code's smoke run, byte for byte. Both
# run on this machine with the same environment (chaotic attacks differ across CPUs, so a
# stored copy of the CSVs could not be compared). Timings live in separate CSVs and are not
# compared.
# Usage: bash workflow/scripts/same_results.sh [CURRENT_SMOKE_WORKDIR]
#   (default results/smoke, as `make smoke` leaves it)
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
current=${1:-$repo/results/smoke}
reference=$(grep -v '^#' "$repo/.ci/results-reference" | head -n 1 | tr -d '[:space:]')
export PATH="$repo/.venv/bin:$PATH"
scratch=$(mktemp -d)
trap 'git -C "$repo" worktree remove --force "$scratch/code" >/dev/null 2>&1 || true; rm -rf "$scratch"' EXIT
git -C "$repo" worktree add --detach --quiet "$scratch/code" "$reference"
mkdir -p "$scratch/run"
# The reference's code first on the path (the environment's editable install points here).
PYTHONPATH="$scratch/code" snakemake --snakefile "$scratch/code/Snakefile" \
  --directory "$scratch/run" --cores "$(nproc)" --configfile "$scratch/code/config/smoke.yaml" \
  --quiet rules
status=0
for table in privacy.csv utility.csv labels.csv; do
  if [ "$table" = labels.csv ] && [ ! -f "$scratch/run/results/$table" ]; then
    echo "same-results: commit ${reference:0:12} writes no $table (older than the label jobs)"
    continue
  fi
  if cmp -s "$scratch/run/results/$table" "$current/results/$table"; then
    echo "same-results: $table is byte-identical to commit ${reference:0:12}'s"
  else
    cp "$scratch/run/results/$table" "$current/results/reference-$table"
    echo "same-results: $table DIFFERS from commit ${reference:0:12}'s (kept as" \
      "$current/results/reference-$table):" >&2
    diff <(head -c 2000 "$scratch/run/results/$table") <(head -c 2000 "$current/results/$table") \
      | head -n 20 >&2 || true
    status=1
  fi
done
exit $status
