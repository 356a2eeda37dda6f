# Two commands do all the set-up on a fresh machine:
#   make run    the whole pipeline on its embedded defaults (params.yaml)
#   make test   the test suite
# Both create the virtualenv first. torch is pinned to the CPU build by constraints.txt.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

# The project's environment: telemetry off (rlhf_ops/environment.py sets the same defaults in-process).
export PREFECT_SERVER_ANALYTICS_ENABLED = false
export DO_NOT_TRACK = 1
export MLFLOW_DISABLE_TELEMETRY = true
export DVC_NO_ANALYTICS = 1
export HF_HUB_OFFLINE ?= 1
# transformers' hub kernels would be fetched on a GPU (rlhf_ops/environment.py: HUB_DEFAULTS)
export USE_HUB_KERNELS ?= NO
# idle OpenMP threads spin ~0.1 ms, then sleep (rlhf_ops/environment.py: GOMP_SPINCOUNT); a user's
# OMP_WAIT_POLICY or GOMP_SPINCOUNT wins
ifeq ($(origin OMP_WAIT_POLICY),undefined)
export GOMP_SPINCOUNT ?= 10000
endif

.PHONY: venv git-repo browser-deps run test test-extended test-fast bench clean-state help

help:
	@echo "make run | make test | make test-extended | make test-fast | make bench | make clean-state"

venv: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e ".[dev]"
	@touch $(STAMP)

# DVC and `dvc exp` need a git repository; a plain copy of the sources gets one here.
git-repo:
	@git rev-parse --git-dir >/dev/null 2>&1 || (git init -q && git add -A && git -c user.name=rlhf -c user.email=rlhf@localhost commit -qm "initial import")

run: venv git-repo
	$(BIN)/rlhf run

test: venv browser-deps
	$(BIN)/python -m pytest -q -m "not extended"

# Real-family checkpoints, 2-process (gloo) runs, every policy algorithm: ~6 more minutes; CI runs them too.
test-extended: venv
	$(BIN)/python -m pytest -q -m extended

test-fast: venv
	$(BIN)/python -m pytest -q -m "not slow and not extended"

bench: venv
	$(BIN)/pip install --quiet -c constraints.txt -e ".[dev]"
	$(BIN)/python benchmarks/reward_model.py
	$(BIN)/python benchmarks/ppo.py

# Headless Chromium + its driver (Debian packages) for the labelling app's browser test. Installed when
# we may (root with apt-get, as on CI); elsewhere the browser test is skipped and says how to install them.
browser-deps:
	@if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver fonts-wqy-microhei >/dev/null; \
	else echo "note: no chromium/chromedriver; the browser test will be skipped (sudo apt-get install chromium chromium-driver)"; fi

# Tracking/orchestration state only (DVC outs and the cache stay).
clean-state:
	rm -rf mlflow.db mlartifacts .prefect
