# Two entry points on a fresh machine: `make demo` and `make test`.
# Each creates .venv and installs what it needs by itself.

VENV := .venv
PYTHON := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed

# Real data lives outside the repository (SPEC section 8). Override any of
# these on the command line or in the environment to point elsewhere. A folder
# that does not exist leaves its variable empty: the loaders then download the
# dataset with TFDS (and say so).
SHARED_DATA ?= $(abspath ../shared/data)
export INVJAX_MNIST_DIR ?= $(wildcard $(SHARED_DATA)/mnist)
export INVJAX_FASHION_MNIST_DIR ?= $(wildcard $(SHARED_DATA)/fashion_mnist)
export INVJAX_DTD_DIR ?= $(wildcard $(SHARED_DATA)/dtd)

DEMO_DIR ?= runs/demo
DEMO_CONFIG ?= configs/mnist_demo.py
DEMO_FIGURE ?= $(DEMO_DIR)/metamers.png
PYTEST_ARGS ?=

.PHONY: demo test test-slow test-all lint benchmark device-check results docs clean

$(INSTALLED): pyproject.toml setup.py
	python3 -m venv $(VENV)
	$(PYTHON) -m pip install --quiet --upgrade pip
	$(PYTHON) -m pip install --quiet -e '.[train,test]'
	touch $@

# A CE fi-RevNet and an independent small CNN on real MNIST, then the CE model's
# metamers as the CNN sees them (about two minutes on a quiet 2-core CPU; a second
# `make demo` reuses both trained runs). `make demo DEMO_FIGURE=docs/figures/demo_metamers.png`
# redraws the README's picture.
# `make demo DEMO_CONFIG=configs/mnist_demo.py:authors DEMO_DIR=runs/demo_authors` shows the metamers of the
# authors' iCE recipe instead (3 epochs of the small model: about 11 minutes more).
demo: $(INSTALLED)
	$(PYTHON) -m experiments.demo --config=$(DEMO_CONFIG) --workdir=$(DEMO_DIR) --figure=$(DEMO_FIGURE)

# Two workers: compilation dominates the suite and parallelises across the 2 cores. Work stealing:
# a worker that runs out of tests takes queued ones from the other, so neither idles at the end.
test: $(INSTALLED)
	$(PYTHON) -m pytest -n 2 --dist worksteal $(PYTEST_ARGS)

# ruff, configured in pyproject.toml ([tool.ruff]); CI runs it before the tests.
lint: $(INSTALLED)
	$(PYTHON) -m ruff check .

# The tests `make test` leaves out (marked slow: end-to-end jobs, exhaustive sweeps); CI runs them after it.
test-slow: $(INSTALLED)
	$(PYTHON) -m pytest -n 2 --dist worksteal -m slow $(PYTEST_ARGS)

test-all: $(INSTALLED)
	$(PYTHON) -m pytest -n 2 --dist worksteal -m "" $(PYTEST_ARGS)

# Every run of docs/results.md (experiments/grid.py; about 5.5 hours on the 2-core CPU; rerun to
# resume), then results/*.json. Logs in runs/results/logs/. LANES="full textured"
# runs only those lanes (ce, ice, textured, selection, full), without the collection.
results: $(INSTALLED)
	$(PYTHON) -m experiments.run_grid --runs=runs/results $(LANES)

benchmark: $(INSTALLED)
	$(PYTHON) -m experiments.benchmark

# The API reference from the docstrings (mkdocs.yml, docs/api/) into site/, in a venv of its own.
DOCS_VENV := .venv-docs
DOCS_INSTALLED := $(DOCS_VENV)/.installed

$(DOCS_INSTALLED): pyproject.toml setup.py
	python3 -m venv $(DOCS_VENV)
	$(DOCS_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(DOCS_VENV)/bin/python -m pip install --quiet -e '.[docs]'
	touch $@

docs: $(DOCS_INSTALLED)
	$(DOCS_VENV)/bin/mkdocs build --strict

# On a lent GPU or TPU: the backend, `make benchmark` there, then the paper's MNIST model trained
# with CE and with iCE for MINUTES (default 8) in all, into results/device/ (README, "On a GPU or TPU").
MINUTES ?= 8
device-check: $(INSTALLED)
	$(PYTHON) -m experiments.device_check --minutes=$(MINUTES)

clean:
	rm -rf $(VENV) $(DOCS_VENV) .pytest_cache site
