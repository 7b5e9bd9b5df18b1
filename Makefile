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

.PHONY: report test smoke lint benchmark clean

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
	$(BIN)/snakemake --lint

# The CI smoke workflow; IMAGEFOLDER=<path> adds a natural-image run on an ImageFolder tree.
smoke: $(STAMP)
	bash workflow/scripts/smoke.sh $(IMAGEFOLDER)

benchmark: $(STAMP)
	$(BIN)/python benchmarks/speed.py

clean:
	rm -rf results logs .snakemake
