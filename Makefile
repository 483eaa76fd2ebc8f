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
PYTEST_ARGS ?=

.PHONY: demo test test-all benchmark clean

$(INSTALLED): setup.py
	python3 -m venv $(VENV)
	$(PYTHON) -m pip install --quiet --upgrade pip
	$(PYTHON) -m pip install --quiet -e '.[test]'
	touch $@

demo: $(INSTALLED)
	$(PYTHON) -m experiments.demo --workdir=$(DEMO_DIR)

test: $(INSTALLED)
	$(PYTHON) -m pytest $(PYTEST_ARGS)

test-all: $(INSTALLED)
	$(PYTHON) -m pytest -m "" $(PYTEST_ARGS)

benchmark: $(INSTALLED)
	$(PYTHON) -m experiments.benchmark

clean:
	rm -rf $(VENV) .pytest_cache
