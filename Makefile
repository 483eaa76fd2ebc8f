# Two entry points on a fresh machine: `make demo` and `make test`.
# Each creates .venv and installs what it needs by itself.

VENV := .venv
PYTHON := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed

# Real data lives outside the repository (SPEC section 8). Override any of
# these on the command line or in the environment to point elsewhere.
SHARED_DATA ?= $(abspath ../shared/data)
export INVJAX_MNIST_DIR ?= $(SHARED_DATA)/mnist
export INVJAX_FASHION_MNIST_DIR ?= $(SHARED_DATA)/fashion_mnist
export INVJAX_DTD_DIR ?= $(SHARED_DATA)/dtd

DEMO_DIR ?= runs/demo
DEMO_FIGURE ?= $(DEMO_DIR)/metamers.png
PYTEST_ARGS ?=

.PHONY: demo test test-all benchmark device-check results clean

$(INSTALLED): setup.py
	python3 -m venv $(VENV)
	$(PYTHON) -m pip install --quiet --upgrade pip
	$(PYTHON) -m pip install --quiet -e '.[test]'
	touch $@

# A CE fi-RevNet and an independent small CNN on real MNIST, then the CE model's
# metamers as the CNN sees them (about two minutes on a quiet 2-core CPU; a second
# `make demo` reuses both trained runs). `make demo DEMO_FIGURE=docs/figures/demo_metamers.png`
# redraws the README's picture.
demo: $(INSTALLED)
	$(PYTHON) -m experiments.demo --workdir=$(DEMO_DIR) --figure=$(DEMO_FIGURE)

# Two workers: compilation dominates the suite and parallelises across the 2 cores.
test: $(INSTALLED)
	$(PYTHON) -m pytest -n 2 $(PYTEST_ARGS)

test-all: $(INSTALLED)
	$(PYTHON) -m pytest -n 2 -m "" $(PYTEST_ARGS)

# Every run of docs/results.md (about 5.5 hours on the 2-core CPU; rerun to
# resume), then results/*.json. Logs in runs/results/logs/. LANES="full textured"
# runs only those lanes (ce, ice, textured, selection, full), side by side.
results: $(INSTALLED)
	PYTHON=$(PYTHON) experiments/results.sh runs/results $(LANES)

benchmark: $(INSTALLED)
	$(PYTHON) -m experiments.benchmark

# On a lent GPU or TPU: the backend, `make benchmark` there, then the paper's MNIST model trained
# with CE and with iCE for MINUTES (default 8) in all, into results/device/ (README, "On a GPU or TPU").
MINUTES ?= 8
device-check: $(INSTALLED)
	$(PYTHON) -m experiments.device_check --minutes=$(MINUTES)

clean:
	rm -rf $(VENV) .pytest_cache
