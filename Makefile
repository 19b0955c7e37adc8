# Everything installs itself: the virtualenv, the pip packages and Azurite (npm ci).
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat requirements.txt requirements-dev.txt | cksum | cut -d' ' -f1)

.PHONY: help install test lint typecheck unit infra-check demo bench replay clean

help:
	@echo "make test   - lint, type-check and run every test (installs what it needs)"
	@echo "make demo   - the whole flow offline against the local emulators"
	@echo "make bench  - benchmarks, printed as a table"

$(STAMP): requirements.txt requirements-dev.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	@rm -f $(VENV)/.installed-*; touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	@touch $@

install: $(STAMP) node_modules/.installed

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: $(STAMP)
	$(VENV)/bin/mypy

unit: install
	$(PY) -m pytest

infra-check:
	bash infra/check.sh

test: install lint typecheck unit infra-check

demo: install
	$(PY) -m devkit.demo

# Acceptance scenarios (acceptance/README.md). Extra flags: make acceptance ACCEPTANCE_ARGS="--only canary --keep"
.PHONY: acceptance acceptance-live
acceptance: install
	$(PY) -m acceptance --target offline $(ACCEPTANCE_ARGS)

acceptance-live: install
	$(PY) -m acceptance --target live $(ACCEPTANCE_ARGS)

bench: install
	$(PY) -m bench

clean:
	rm -rf $(VENV) .venv-infra node_modules .pytest_cache .mypy_cache .ruff_cache .devkit
