# Two commands: `make run` (smoke workflow end to end) and `make test` (the test suite).
# Both create the virtual environment first when it is missing or out of date.
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CORES ?= 2

.PHONY: run test lint dryrun bench clean-smoke

$(STAMP): envs/requirements-cpu.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r envs/requirements-cpu.txt
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $(STAMP)

run: $(STAMP)
	PATH=$(abspath $(BIN)):$$PATH snakemake --configfile config/smoke.yaml --cores $(CORES) --printshellcmds

test: $(STAMP)
	PATH=$(abspath $(BIN)):$$PATH python -m pytest

lint: $(STAMP)
	PATH=$(abspath $(BIN)):$$PATH snakemake --lint

dryrun: $(STAMP)
	PATH=$(abspath $(BIN)):$$PATH snakemake -n --quiet rules

bench: $(STAMP)
	PATH=$(abspath $(BIN)):$$PATH python bench/bench_scoring.py

clean-smoke:
	rm -rf results/smoke logs/smoke resources/tiny_models
