# The two commands a researcher needs (each sets everything up first):
#   make report   -> runs the default benchmark grid and writes results/report.html
#   make test     -> lint + the test suite
PYTHON ?= python3
CORES ?= $(shell nproc)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Workflow jobs run `python -m ...`: the environment's python must come first on PATH.
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: report test docs smoke same-results slurm-smoke report-check lint benchmark dag-benchmark clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

report: $(STAMP)
	$(BIN)/snakemake --cores $(CORES)

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/snakefmt --check Snakefile workflow/
	$(BIN)/snakemake --lint

# The CI smoke workflow; IMAGEFOLDER=<path> adds a natural-image run on an ImageFolder tree.
# The documentation site (docs/, mkdocs.yml) into site/; --strict: a broken link fails.
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet

smoke: $(STAMP)
	bash workflow/scripts/smoke.sh $(IMAGEFOLDER)

# After `make smoke`: the digits smoke grid again with the code of the commit in
# .ci/results-reference, and its result CSVs compared with this code's, byte for byte.
same-results: $(STAMP)
	bash workflow/scripts/same_results.sh

# The smoke grid (digits) through a one-node SLURM started on this machine (root; installs
# slurm-wlm and munge with apt-get when missing) and workflow/profiles/slurm.
slurm-smoke: $(STAMP)
	bash workflow/scripts/slurm_smoke.sh

# Opens the smoke run's report in headless Chromium (installed on demand) and checks that
# every figure and gallery image renders; the screenshot stays under results/.
report-check: $(STAMP)
	bash workflow/scripts/report_check.sh results/smoke/results/report.html \
	  results/smoke/report-screenshot.png

benchmark: $(STAMP)
	$(BIN)/python benchmarks/batched_attacks.py
	$(BIN)/python benchmarks/speed.py
	$(BIN)/python benchmarks/startup.py
	$(BIN)/python benchmarks/labels.py
	$(BIN)/python benchmarks/dag.py

# Seconds for `snakemake -n` on config/paper.yaml (planning cost of a large grid).
dag-benchmark: $(STAMP)
	$(BIN)/python benchmarks/dag.py

clean:
	rm -rf results logs .snakemake
